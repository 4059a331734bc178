"""The admin page (/admin), its login, and the /admin-status snapshot."""
