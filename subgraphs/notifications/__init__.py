"""Notifications: in-app notifications, email, SMS and push, preferences, and partner webhooks."""
