"""The forward-return horizons (trading days) of the targets, the model heads and the synthetic market's
oracle: the one default every config starts from."""

HORIZONS: tuple[int, ...] = (1, 5, 10, 20)


def target_horizons(columns: list[str]) -> tuple[int, ...]:
    """The horizons ``h`` with a ``target_{h}d`` column, ascending."""
    return tuple(
        sorted(
            int(c.removeprefix("target_").removesuffix("d"))
            for c in columns
            if c.startswith("target_") and c.endswith("d") and c[7:-1].isdigit()
        )
    )
