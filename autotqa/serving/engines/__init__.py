"""Engine implementations. Import the concrete modules lazily: optional extras live behind them."""
