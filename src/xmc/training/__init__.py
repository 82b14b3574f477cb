"""The torch training loop of the neural methods: schedules, shortlists, checkpoints."""
