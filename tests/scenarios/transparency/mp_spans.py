"""Spans in multiprocessing's children: a Process, a Pool closed and joined, a ProcessPoolExecutor."""

import sys
from concurrent.futures import ProcessPoolExecutor
import multiprocessing

from opentelemetry import trace

tracer = trace.get_tracer("mp")


def work(tag: str) -> str:
    with tracer.start_as_current_span("child-" + tag):
        return tag


if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    process = context.Process(target=work, args=("process",))
    process.start()
    process.join()
    pool = context.Pool(2)
    pool.map(work, ["pool-1", "pool-2"])
    pool.close()
    pool.join()
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        list(executor.map(work, ["executor-1", "executor-2"]))
    print("done")
