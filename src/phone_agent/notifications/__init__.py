"""Owner notifications: ``notify_owner(services, OwnerEvent(...))`` by SMS and/or e-mail, rate-limited."""

from phone_agent.notifications.owner import NotifyResult, NotifyServices, OwnerEvent, notify_owner

__all__ = ["NotifyResult", "NotifyServices", "OwnerEvent", "notify_owner"]
