"""The stages of the flow, in order: pull -> accept -> forward -> decide -> notify.

Each stage talks to ports only (:mod:`connector.ports`); the scheduler, the CLI, the HTTP
server and the tests all call the same coroutines.
"""
