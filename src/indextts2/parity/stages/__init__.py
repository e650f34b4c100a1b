"""One module per parity stage, each with ``run(golden) -> list[Check]``."""
