"""What happens after a decision, outside Modera: signed action webhooks delivered from the store's outbox."""
