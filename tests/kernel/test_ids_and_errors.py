from __future__ import annotations

import threading

import pytest
from graphql import GraphQLError

from kernel.errors import BadUserInput, Forbidden, to_client_error
from kernel.ids import SnowflakeGenerator, parse_id, snowflake_timestamp_ms


def test_snowflakes_are_unique_and_increasing_across_threads() -> None:
    generator = SnowflakeGenerator(node_id=7)
    results: list[list[int]] = [[] for _ in range(4)]

    def work(bucket: list[int]) -> None:
        bucket.extend(generator.next_id() for _ in range(20_000))

    threads = [threading.Thread(target=work, args=(b,)) for b in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for bucket in results for i in bucket]
    assert len(set(all_ids)) == 80_000
    assert all(bucket == sorted(bucket) for bucket in results)
    assert all((i >> 12) & 0x3FF == 7 for i in all_ids)
    assert snowflake_timestamp_ms(all_ids[0]) > 1_735_689_600_000


def test_different_nodes_never_collide() -> None:
    a, b = SnowflakeGenerator(1), SnowflakeGenerator(2)
    assert not {a.next_id() for _ in range(5000)} & {b.next_id() for _ in range(5000)}


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "1.5", str(1 << 63)])
def test_parse_id_rejects_non_ids(raw: str) -> None:
    with pytest.raises(BadUserInput):
        parse_id(raw)


def test_internal_errors_are_masked_and_app_errors_keep_their_code() -> None:
    leaked = to_client_error(GraphQLError("x", original_error=RuntimeError("SELECT * FROM secrets")))
    assert leaked.message == "Internal server error"
    assert leaked.extensions == {"code": "INTERNAL_SERVER_ERROR"}
    forbidden = to_client_error(GraphQLError("x", original_error=Forbidden()))
    assert forbidden.extensions == {"code": "FORBIDDEN"}


async def test_node_id_leases_are_exclusive_and_come_back_when_released(redis) -> None:
    from kernel.ids import claim_node_id
    claimed = [await claim_node_id(redis) for _ in range(50)]
    nodes = [node for node, _ in claimed]
    assert len(set(nodes)) == 50 and all(1 <= n <= 1023 for n in nodes)
    assert all([await redis.ttl(key) > 0 for _, key in claimed])  # a crashed holder's lease expires
    await redis.delete(claimed[0][1])
    again = [node for node, _ in [await claim_node_id(redis) for _ in range(1023 - 49)]]
    assert claimed[0][0] in again and not set(again) & set(nodes[1:])
