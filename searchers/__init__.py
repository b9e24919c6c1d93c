"""Search algorithms: propose removal sets, receive their scores; they never touch a model."""
