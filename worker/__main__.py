from pim.runtime.process import exit_cleanly
from worker.app import main

if __name__ == "__main__":
    exit_cleanly(main)
