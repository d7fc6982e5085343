"""The Discord adapter: discord.py 2.x events and slash commands in, streamed message edits out.

runner.serve (entry point) → client.KimiDiscordClient → events.MessageRouter (messages) and
commands.KimiGroup (slash commands) → the core Engine, answering through surface.ChannelSurface or
interaction_surface.InteractionSurface.
"""
