"""The framework's limit for `newsrec bench serve`: a grpc.aio server implementing the same API
with a constant 10-item answer and no Redis.

    python -m training.bench_bare --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc

from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc

ITEMS = [
    pb.Item(
        article_id=f"demo-{n:06d}",
        score=1.0 / (n + 1),
        title=f"A constant headline {n}",
        url=f"https://demo.newsrec.example/world/demo-{n:06d}",
        sections=["world", "europe"],
        tags=["constant"],
    )
    for n in range(10)
]


class ConstantServicer(pb_grpc.RecommenderServicer):
    """Answers every read with the same list."""

    async def GetRelated(self, request: Any, context: Any) -> pb.GetRelatedResponse:
        return pb.GetRelatedResponse(items=ITEMS, model_version="constant")

    async def GetPopular(self, request: Any, context: Any) -> pb.GetPopularResponse:
        return pb.GetPopularResponse(items=ITEMS, model_version="constant")

    async def StreamEvents(
        self,
        request_iterator: Any,
        context: Any,
    ) -> pb.RecordEventsResponse:
        count = 0
        async for _ in request_iterator:
            count += 1
        return pb.RecordEventsResponse(accepted=count)

    async def StreamEventBatches(
        self,
        request_iterator: Any,
        context: Any,
    ) -> pb.RecordEventsResponse:
        count = 0
        async for request in request_iterator:
            count += len(request.events)
        return pb.RecordEventsResponse(accepted=count)


async def run(port: int) -> None:
    """Serve until killed."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    pb_grpc.add_RecommenderServicer_to_server(ConstantServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"serving on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    """Parse flags and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(run(parser.parse_args().port))


if __name__ == "__main__":
    main()
