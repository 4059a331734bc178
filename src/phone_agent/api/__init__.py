"""Thin HTTP and websocket edges, one router per resource."""
