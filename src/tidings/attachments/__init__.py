"""Attachments: the network core's store of encrypted files (WhatsApp's CDN model)."""
