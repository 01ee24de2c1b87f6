"""Plain data: history events, actions, messages, state and errors. No I/O, stdlib only."""
