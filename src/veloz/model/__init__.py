"""The VeloZ domain model: identifiers, enums, orders and their state machine, commands,
events, market data and account types. Pure data and rules; imports nothing else from veloz."""
