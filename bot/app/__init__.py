"""The composition root: settings, building every object, the runner and the CLI.

Only this package imports concrete adapters and engines; everything else is
handed the narrow ports it uses (see `bot.ports`, `bot.store.base`).
"""
