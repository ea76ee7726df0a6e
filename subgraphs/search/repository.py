"""SQL of the search domain's projection: documents, variant stock, vocabulary, synonyms, logs.

The search queries themselves are the Postgres backend's (backends/postgres.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, all_, and_, any_, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db import any_of, rowcount
from subgraphs.search.models import ClickRow, DocumentRow, QueryLogRow, SynonymGroupRow, VariantRow, VocabularyRow

# ---- documents ---------------------------------------------------------------------------------------------


async def document_version(session: AsyncSession, product_id: int) -> datetime | None:
    stmt = select(DocumentRow.source_updated_at).where(DocumentRow.product_id == product_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def document_versions(session: AsyncSession, product_ids: Sequence[int]) -> dict[int, datetime]:
    stmt = (select(DocumentRow.product_id, DocumentRow.source_updated_at)
            .where(any_of(DocumentRow.product_id, product_ids)))
    return {product_id: version for product_id, version in (await session.execute(stmt)).all()}


async def upsert_document(session: AsyncSession, values: dict[str, Any]) -> None:
    await upsert_documents(session, [values])


async def upsert_documents(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or replace documents (one statement; popularity and the in-stock flag are the index's own)."""
    if not rows:
        return
    stmt = insert(DocumentRow)
    keep = {"popularity", "product_id", "in_stock"}
    stmt = stmt.on_conflict_do_update(
        index_elements=[DocumentRow.product_id],
        set_={k: stmt.excluded[k] for k in rows[0] if k not in keep} | {"indexed_at": func.now()})
    # A parameter list: SQLAlchemy batches it into multi-row statements itself ("insertmanyvalues"), without
    # compiling one giant statement per call.
    await session.execute(stmt, list(rows))


async def delete_documents(session: AsyncSession, product_ids: Sequence[int]) -> int:
    if not product_ids:
        return 0
    ids = bindparam("ids", list(product_ids), type_=ARRAY(BigInteger))
    await session.execute(delete(VariantRow).where(VariantRow.product_id == any_(ids)))
    return rowcount(await session.execute(delete(DocumentRow).where(DocumentRow.product_id == any_(ids))))


async def documents(session: AsyncSession, product_ids: Sequence[int]) -> list[DocumentRow]:
    stmt = select(DocumentRow).where(any_of(DocumentRow.product_id, product_ids))
    return list((await session.execute(stmt)).scalars())


async def product_ids_not_in(session: AsyncSession, keep: Sequence[int]) -> list[int]:
    # One array parameter: a rebuild's ids (100,000s) exceed asyncpg's 32,767 parameters as an IN list.
    stmt = select(DocumentRow.product_id).where(
        DocumentRow.product_id != all_(bindparam("keep", list(keep), type_=ARRAY(BigInteger))))
    return list((await session.execute(stmt)).scalars())


async def bump_popularity(session: AsyncSession, product_id: int) -> None:
    await session.execute(update(DocumentRow).where(DocumentRow.product_id == product_id)
                          .values(popularity=DocumentRow.popularity + 1))


# ---- variants and stock ---------------------------------------------------------------------------------------


async def attach_variants(session: AsyncSession, product_id: int, variant_ids: Sequence[int]) -> None:
    await attach_variants_of(session, {product_id: variant_ids})


async def attach_variants_of(session: AsyncSession, variants_by_product: dict[int, Sequence[int]]) -> None:
    """Each product's variants are exactly these: new ones join (stock seen earlier is kept), gone ones leave."""
    pairs = [(v, p) for p, variant_ids in variants_by_product.items() for v in variant_ids]
    await session.execute(delete(VariantRow).where(any_of(VariantRow.product_id, variants_by_product),
                                                   VariantRow.variant_id.not_in([v for v, _ in pairs])))
    if pairs:
        stmt = insert(VariantRow)
        await session.execute(stmt.on_conflict_do_update(index_elements=[VariantRow.variant_id],
                                                         set_={"product_id": stmt.excluded.product_id}),
                              [{"variant_id": v, "product_id": p} for v, p in pairs])


async def set_variant_stock(session: AsyncSession, variant_id: int, available: int, in_stock: bool) -> int | None:
    """Record a variant's stock; returns its product id (None while the product is not known yet)."""
    stmt = insert(VariantRow).values(variant_id=variant_id, available=available, in_stock=in_stock)
    stmt = stmt.on_conflict_do_update(index_elements=[VariantRow.variant_id],
                                      set_={"available": available, "in_stock": in_stock, "updated_at": func.now()})
    await session.execute(stmt)
    return (await session.execute(select(VariantRow.product_id).where(VariantRow.variant_id == variant_id))
            ).scalar_one_or_none()


async def refresh_in_stock_of(session: AsyncSession, product_ids: Sequence[int]) -> None:
    """refresh_in_stock for many products in one statement. Only documents whose flag changes are written: a
    rebuild's documents were just written, and rewriting every one of them again doubled the table (a new
    row version each) and the GIN index entries a search walks."""
    any_in_stock = (select(func.coalesce(func.bool_or(VariantRow.in_stock), False))
                    .where(VariantRow.product_id == DocumentRow.product_id).scalar_subquery())
    await session.execute(update(DocumentRow).where(any_of(DocumentRow.product_id, product_ids),
                                                    DocumentRow.in_stock.is_distinct_from(any_in_stock))
                          .values(in_stock=any_in_stock))


async def refresh_in_stock(session: AsyncSession, product_id: int) -> bool:
    """A product is in stock when any of its variants is; True when that changed its document's flag."""
    in_stock = (await session.execute(
        select(func.coalesce(func.bool_or(VariantRow.in_stock), False)).where(VariantRow.product_id == product_id)
    )).scalar_one()
    return rowcount(await session.execute(
        update(DocumentRow).where(DocumentRow.product_id == product_id, DocumentRow.in_stock.is_distinct_from(in_stock))
        .values(in_stock=in_stock))) > 0


# ---- vocabulary ------------------------------------------------------------------------------------------------


async def add_vocabulary(session: AsyncSession, entries: Sequence[tuple[str, str, str]]) -> None:
    """(word, kind, label) rows; a word seen again counts once more (ties in corrections go to common words)."""
    if not entries:
        return
    counts: dict[tuple[str, str], int] = {}
    labels: dict[tuple[str, str], str] = {}
    count_vocabulary(entries, counts, labels)
    await add_counted_vocabulary(session, counts, labels)


def count_vocabulary(entries: Sequence[tuple[str, str, str]], counts: dict[tuple[str, str], int],
                     labels: dict[tuple[str, str], str]) -> None:
    """Adds (word, kind, label) entries to running counts and labels (the last label seen wins)."""
    for word, kind, label in entries:
        counts[(word, kind)] = counts.get((word, kind), 0) + 1
        labels[(word, kind)] = label


def _in_lock_order(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(word, kind) keys in the vocabulary's index order (kind, word): every writer locks shared words in this one
    order, so two workers indexing products that share words queue instead of deadlocking."""
    return sorted(keys, key=lambda wk: (wk[1], wk[0]))


async def add_counted_vocabulary(session: AsyncSession, counts: dict[tuple[str, str], int],
                                 labels: dict[tuple[str, str], str]) -> None:
    """add_vocabulary of entries already counted (count_vocabulary)."""
    if not counts:
        return
    rows = [{"word": w, "kind": k, "label": labels[(w, k)], "frequency": counts[(w, k)]}
            for (w, k) in _in_lock_order(counts)]
    stmt = insert(VocabularyRow)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[VocabularyRow.kind, VocabularyRow.word],
        set_={"frequency": VocabularyRow.frequency + stmt.excluded.frequency, "label": stmt.excluded.label}), rows)


async def lock_vocabulary(session: AsyncSession, keys: set[tuple[str, str]]) -> None:
    """Lock these (word, kind) rows in index order, creating the missing ones with frequency 0 (the handlers then
    add their counts). A consumer batch indexes product after product, each adding its words: without this, batch
    A held "kettle" and wanted "steel" while batch B held "steel" and wanted "kettle", and Postgres rolled one back
    after its deadlock timeout. A word whose snapshot then turns out stale keeps frequency 0."""
    if not keys:
        return
    rows = [{"word": w, "kind": k, "label": w, "frequency": 0} for (w, k) in _in_lock_order(keys)]
    stmt = insert(VocabularyRow)
    await session.execute(stmt.on_conflict_do_update(index_elements=[VocabularyRow.kind, VocabularyRow.word],
                                                     set_={"frequency": VocabularyRow.frequency}), rows)


async def clear_vocabulary(session: AsyncSession) -> None:
    await session.execute(delete(VocabularyRow))


# ---- synonyms --------------------------------------------------------------------------------------------------


async def synonym_groups(session: AsyncSession) -> list[list[str]]:
    rows = await session.execute(select(SynonymGroupRow.terms).order_by(SynonymGroupRow.created_at, SynonymGroupRow.id))
    return [list(terms) for terms in rows.scalars()]


async def synonym_groups_touching(session: AsyncSession, terms: Sequence[str]) -> list[list[str]]:
    if not terms:
        return []
    rows = await session.execute(select(SynonymGroupRow.terms).where(SynonymGroupRow.terms.overlap(list(terms))))
    return [list(t) for t in rows.scalars()]


async def replace_synonym_group(session: AsyncSession, group_id: int, terms: Sequence[str]) -> None:
    """Groups sharing a term with `terms` are replaced by it (or just removed when `terms` has one term)."""
    await session.execute(delete(SynonymGroupRow).where(SynonymGroupRow.terms.overlap(list(terms))))
    if len(terms) >= 2:
        await session.execute(insert(SynonymGroupRow).values(id=group_id, terms=list(terms)))


# ---- insights --------------------------------------------------------------------------------------------------


async def tune_search_transaction(session: AsyncSession) -> None:
    """The search transaction's settings, alone; the Postgres backend folds them into its first statement
    instead (SEARCH_SETTINGS), saving the round trip.
    text(): set_config() of transaction settings, which Core has no construct for."""
    await session.execute(text(f"SELECT {SEARCH_SETTINGS}"))


# Settings of a search's transaction, set by its first statement:
# - jit off: the facet statement's estimates (jsonb_each x jsonb_array_elements guessed at 100 rows each)
#   cross jit_above_cost, and compiling it took ~600 ms per query at 100k products for a plan that runs
#   in ~50 ms;
# - synchronous_commit off: a query log row written in the search's transaction need not wait for a WAL flush
#   (losing the last entries in a crash only blurs the insights).
SEARCH_SETTINGS = "set_config('jit', 'off', true), set_config('synchronous_commit', 'off', true)"


async def log_query(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(QueryLogRow).values(**row))


async def log_streamed_queries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Searches drained from the query-log stream; an entry already drained (by a concurrent drain) is skipped."""
    if rows:
        await session.execute(insert(QueryLogRow).on_conflict_do_nothing(index_elements=[QueryLogRow.stream_entry]),
                              list(rows))


async def log_click(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(ClickRow).values(**row))


async def top_queries(session: AsyncSession, since: datetime, *, zero_results: bool, limit: int
                      ) -> list[tuple[str, int]]:
    clauses = [QueryLogRow.searched_at >= since]
    if zero_results:
        clauses.append(QueryLogRow.result_count == 0)
    stmt = (select(QueryLogRow.query, func.count().label("n")).where(and_(*clauses))
            .group_by(QueryLogRow.query).order_by(func.count().desc(), QueryLogRow.query).limit(limit))
    return [(q, n) for q, n in (await session.execute(stmt)).all()]


async def search_and_click_counts(session: AsyncSession, since: datetime) -> tuple[int, int]:
    searches = (await session.execute(select(func.count()).where(QueryLogRow.searched_at >= since))).scalar_one()
    clicks = (await session.execute(select(func.count(func.distinct(ClickRow.query)))
                                    .where(ClickRow.clicked_at >= since))).scalar_one()
    return int(searches), int(clicks)


async def attribute_names(session: AsyncSession, names: Sequence[str]) -> set[str]:
    """Which of these attribute names some document has (an unknown facet name is the caller's mistake)."""
    found: set[str] = set()
    for name in dict.fromkeys(names):
        if (await session.execute(select(DocumentRow.product_id).where(DocumentRow.attributes.has_key(name))
                                  .limit(1))).first() is not None:
            found.add(name)
    return found
