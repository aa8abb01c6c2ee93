"""Intake: batch folders in the inboxes, their manifests, page images and cover sheets."""
