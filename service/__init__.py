"""jobhooks: receiver for MX aggregation-job webhooks."""
