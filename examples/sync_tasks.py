"""The blog's synchronous example: task 2 waits for task 1 to finish (about 5 s in all)."""

import time


def task1():
    print("Starting task 1")
    time.sleep(3)
    print("Task 1 complete")


def task2():
    print("Starting task 2")
    time.sleep(2)
    print("Task 2 complete")


def main():
    task1()
    task2()


if __name__ == "__main__":
    main()
