"""Twilio: signature check, TwiML, call control (transfer, hang up, SMS, dial out)."""
