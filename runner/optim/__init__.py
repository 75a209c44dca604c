"""How the weights move: update rules, learning-rate schedules, batch-size plans, regularization."""
