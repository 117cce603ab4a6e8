"""
The pieces of C{bench/attacks.py}: L{harness} (the node processes, plain
sockets and measurements), L{cases} (one function per attack) and
L{report} (what is printed). Imported with C{bench/} on C{sys.path}, as
the script runs.
"""
