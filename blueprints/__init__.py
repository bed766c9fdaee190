"""The Functions app's blueprints: HTTP hooks, manual actions, the batch queue, the timer."""
