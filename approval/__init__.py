"""approval: the approval-flow domain — departments, working days, opinion rounds, events, webhooks."""
