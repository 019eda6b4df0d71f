"""MinHash near-duplicate removal (stage ``near_dedup``) as Beam groupings that scale out.

1. ``doc_ref_to_signature``: each document's MinHash signature (``filters.minhash``).
2. ``band_key_to_refs``: GroupByKey on each of the LSH band keys; the members of a bucket are
   candidate pairs. With ``verify`` off, each bucket becomes a star of edges. With it on, a
   member is linked only to the earlier members (in ref order) whose signatures (or shingle
   sets) clear the threshold, which drops LSH false positives; every bucket is compared in one
   vectorized pass. Signatures travel once per document, not once per band: the members of
   buckets shared by two or more documents are joined with their signatures by ref, and only
   those buckets are grouped again with them (most buckets hold one document). Shipping the
   512-byte signature with each of 16 band keys had made the band shuffle 1.8 times the size
   of the text (45.7 MB for linux-doc's 25.4 MB; 9.0 MB now). Edges are ``(smaller, larger)``.
3. Connected components by alternating large-star and small-star rounds (Kiveris et al. 2014,
   "Connected Components in MapReduce and Beyond"; BigCode's Spark dedup uses the same), each
   round a GroupByKey over the edges. A node's neighbours are streamed twice (min, then emit),
   so no worker holds a component, and nothing is ever collected on one worker. Rounds are
   unrolled up to ``max_rounds``; a final check asserts that every component is a star around
   its minimum (the converged state) and fails the run loudly otherwise, instead of writing
   wrong clusters.
4. ``root_to_members``: the survivor of each cluster is the member with the highest quality
   score when the quality stage ran, else the smallest ``(id, source, position)``. The others
   are removed as ``near_duplicate`` with ``cluster_id`` (the smallest member id) and
   ``survivor_id``.

Chains (A~B, B~C, A not ~ C) end in one cluster: components follow edges transitively.
"""

from __future__ import annotations

import heapq
import itertools
import time

import apache_beam as beam
import numpy as np

from winnow.filters.minhash import MinHasher, NearDedupConfig, band_keys, exact_jaccard
from winnow.pipeline.packing import packed, unpacked
from winnow.pipeline.transforms import REMOVED, STATS, BundleStats
from winnow.schemas.records import Document, Removed

STAGE = "near_dedup"
CLUSTERS = "clusters"

Ref = tuple  # (id, source, position): a document's unique, ordered identity


SIGNATURES = "signatures"


class SignatureFn(beam.DoFn):
    """doc -> (band key, ref) for each band; with ``verify`` on, also (ref, (signature bytes,
    shingle hash bytes or None)) once on ``signatures``.

    The arrays travel as raw ``uint32`` bytes: Beam encodes bytes natively, while an ndarray
    would be pickled."""

    def __init__(self, config: NearDedupConfig):
        self.config = config

    def setup(self):
        self._hasher = MinHasher.from_config(self.config)
        self._bands, self._rows = self.config.bands_and_rows()
        self._stats = BundleStats()

    def process(self, doc: Document):
        started = time.perf_counter()
        hashes = self._hasher.shingle_hashes(doc.text)
        if not len(hashes):  # no words: every such document would share one signature
            return
        signature = self._hasher.signature(hashes).astype(np.uint32)
        ref = doc.sort_key
        if self.config.verify != "none":
            keep_hashes = hashes.tobytes() if self.config.verify == "exact" else None
            yield beam.pvalue.TaggedOutput(SIGNATURES, (ref, (signature.tobytes(), keep_hashes)))
        keys = band_keys(signature, self._bands, self._rows)
        self._stats.stage(STAGE).seconds += time.perf_counter() - started
        for key in keys:
            yield key, ref

    def finish_bundle(self):
        yield from self._stats.flush()


def uint32s(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint32)


def star_edges(band_key_and_refs):
    """(band key, refs) -> (smallest ref, ref) for every other member: ``verify`` none links
    the whole bucket through its smallest member, which keeps it connected."""
    _, refs = band_key_and_refs
    refs = sorted(refs)
    for ref in refs[1:]:
        yield refs[0], ref


def shared_bucket_members(band_key_and_refs):
    """(band key, refs) -> (ref, band key) for each member of a bucket of two or more
    documents: the refs whose signatures that bucket's verification needs. The members are
    streamed, in one pass, rather than listed first."""
    band_key, refs = band_key_and_refs
    refs = iter(refs)
    first, second = next(refs, None), next(refs, None)
    if second is None:
        return
    for ref in itertools.chain((first, second), refs):
        yield ref, band_key


def members_with_signatures(ref_and_groups):
    """(ref, {band_keys, signature: [(signature, hashes)]}) -> (band key, (ref, signature,
    hashes)) for each shared bucket of the document."""
    ref, groups = ref_and_groups
    for signature, hashes in groups["signature"]:  # one per ref
        for band_key in groups["band_keys"]:
            yield band_key, (ref, signature, hashes)


def bucket_edges(band_key_and_members, config: NearDedupConfig):
    """(band key, members) -> (smaller ref, larger ref) for every verified candidate pair.

    Members are ``(ref, signature bytes, shingle hash bytes or None)``, sorted by ref; each is
    linked to every earlier member it is similar to (``verify`` estimated or exact).
    """
    _, members = band_key_and_members
    members = sorted(members, key=lambda member: member[0])
    if len(members) < 2:
        return
    refs = [member[0] for member in members]
    if config.verify == "estimated":
        signatures = np.stack([uint32s(member[1]) for member in members])  # (k, num_perm)
        for i in range(1, len(members)):
            agreement = (signatures[:i] == signatures[i]).mean(axis=1)  # (i,)
            for j in np.flatnonzero(agreement >= config.threshold):
                yield refs[j], refs[i]
        return
    for i in range(1, len(members)):
        for j in range(i):
            if exact_jaccard(uint32s(members[j][2]), uint32s(members[i][2])) >= config.threshold:
                yield refs[j], refs[i]


def large_star(node_and_neighbours):
    """Link every larger neighbour of a node to the smallest of the node's neighbourhood.
    Edges come out as (larger, smaller), keyed for small-star: neighbour > node >= smallest."""
    node, neighbours = node_and_neighbours
    smallest = min(min(neighbours), node)
    for neighbour in neighbours:
        if neighbour > node:
            yield neighbour, smallest


def small_star(node_and_smaller_neighbours):
    """Link a node and its smaller neighbours to the smallest of them."""
    node, neighbours = node_and_smaller_neighbours
    smallest = min(neighbours)
    if node != smallest:
        yield node, smallest
    for neighbour in neighbours:
        if neighbour != smallest:
            yield neighbour, smallest


class ConnectedComponents(beam.PTransform):
    """edges (smaller, larger) -> (member, root) for every non-root member; root = component min.

    Large-star + small-star rounds, unrolled ``max_rounds`` times, then a convergence check.
    """

    def __init__(self, max_rounds: int):
        super().__init__()
        self.max_rounds = max_rounds

    def expand(self, edges):
        for round_index in range(self.max_rounds):
            edges = (
                edges
                | f"LargeStarBothWays{round_index}" >> beam.FlatMap(lambda e: [e, e[::-1]])
                | f"LargeStarGroup{round_index}" >> beam.GroupByKey()
                | f"LargeStar{round_index}" >> beam.FlatMap(large_star)
                | f"SmallStarGroup{round_index}" >> beam.GroupByKey()
                | f"SmallStar{round_index}" >> beam.FlatMap(small_star)
                | f"Distinct{round_index}" >> beam.Distinct()
            )
        # edges are now (larger, smaller); converged means each member has exactly one root and
        # no root is itself a member.
        member_to_root = edges
        roots = edges | "Roots" >> beam.Map(lambda e: (e[1], "root"))
        members = edges | "Members" >> beam.Map(lambda e: (e[0], ("member", e[1])))
        _ = (
            (roots, members)
            | "FlattenCheck" >> beam.Flatten()
            | "GroupCheck" >> beam.GroupByKey()
            | "CheckConverged" >> beam.Map(_check_star, self.max_rounds)
        )
        return member_to_root


class NotConvergedError(RuntimeError):
    pass


def _check_star(node_and_roles, max_rounds: int):
    """Streams a node's roles: it may be a root, or a member of exactly one root, not both."""
    node, roles = node_and_roles
    is_root = False
    member_root = None
    for role in roles:
        if role == "root":
            is_root = True
        elif member_root is None:
            member_root = role[1]
        elif role[1] != member_root:
            is_root = True  # two roots for one member: the same failure
        if is_root and member_root is not None:
            raise NotConvergedError(
                f"near_dedup: connected components did not converge in {max_rounds} rounds "
                f"(node {node!r}); raise near_dedup.max_rounds")
    return node


def survivor_order(ref: Ref, score: float | None) -> tuple:
    """Sort key whose minimum is the survivor: highest quality score, then smallest ref."""
    return (-(score if score is not None else 0.0), ref)


def decide_cluster(root_and_members, sample_size: int):
    """(root, [(ref, score)]) -> (ref, (cluster id, survivor ref)) per member, and one cluster
    summary on the ``clusters`` output, whose ``member_ids`` are the ids of the
    ``sample_size`` smallest refs (not the first to arrive, which differ from runner to
    runner). Streaming passes over the members, holding ``sample_size`` refs at most."""
    root, members = root_and_members
    size = 0
    survivor = None
    for ref, score in members:
        size += 1
        if survivor is None or survivor_order(ref, score) < survivor_order(*survivor):
            survivor = (ref, score)
    sample = heapq.nsmallest(sample_size, (ref for ref, _ in members))
    cluster_id = root[0]
    for ref, _ in members:
        yield ref, (cluster_id, survivor[0])
    summary = {"cluster_id": cluster_id, "size": size, "survivor_id": survivor[0][0],
               "member_ids": [ref[0] for ref in sample]}
    yield beam.pvalue.TaggedOutput(CLUSTERS, summary)


class ApplyDecisionFn(beam.DoFn):
    """(ref, {docs: [doc], decision: [(cluster id, survivor ref)]}) -> kept doc or Removed."""

    def setup(self):
        self._stats = BundleStats()

    def process(self, ref_and_groups):
        ref, groups = ref_and_groups
        decisions = list(groups["decision"])
        for doc in map(unpacked, groups["docs"]):
            stats = self._stats.stage(STAGE)
            stats.documents_in += 1
            stats.bytes_in += len(doc.text.encode("utf-8"))
            if decisions and decisions[0][1] != ref:
                cluster_id, survivor = decisions[0]
                stats.removed["near_duplicate"] += 1
                self._stats.count(f"{STAGE}/removed:near_duplicate")
                yield beam.pvalue.TaggedOutput(REMOVED, Removed.of(
                    doc, STAGE, "near_duplicate", cluster_id=cluster_id,
                    survivor_id=survivor[0]))
                continue
            stats.documents_out += 1
            stats.bytes_out += len(doc.text.encode("utf-8"))
            self._stats.count(f"{STAGE}/kept")
            if decisions:
                doc = doc.with_metadata(near_dup_cluster=decisions[0][0])
            yield doc

    def finish_bundle(self):
        yield from self._stats.flush()


class NearDedup(beam.PTransform):
    """docs -> {kept, removed, stats, clusters: cluster summaries}."""

    CLUSTER_SAMPLE = 5

    def __init__(self, config: NearDedupConfig):
        super().__init__(label=STAGE)
        self.config = config

    def expand(self, docs):
        config = self.config
        signed = docs | "Signatures" >> beam.ParDo(SignatureFn(config)).with_outputs(
            SIGNATURES, STATS, main="band_refs")
        buckets = signed.band_refs | "GroupByBand" >> beam.GroupByKey()
        if config.verify == "none":
            edges = buckets | "BucketEdges" >> beam.FlatMap(star_edges)
        else:
            edges = (
                {"band_keys": buckets | "SharedBuckets" >> beam.FlatMap(shared_bucket_members),
                 "signature": signed[SIGNATURES]}
                | "JoinSignatures" >> beam.CoGroupByKey()
                | "WithSignatures" >> beam.FlatMap(members_with_signatures)
                | "GroupCandidates" >> beam.GroupByKey()
                | "BucketEdges" >> beam.FlatMap(bucket_edges, config)
            )
        member_to_root = (
            edges
            | "DistinctEdges" >> beam.Distinct()
            | "Components" >> ConnectedComponents(config.max_rounds)
        )
        ref_to_score = docs | "RefScore" >> beam.Map(
            lambda doc: (doc.sort_key, doc.metadata.get("quality_score")))
        ref_to_root = (
            (member_to_root,
             member_to_root | "RootsOfThemselves" >> beam.Map(lambda e: (e[1], e[1])))
            | "AllMembers" >> beam.Flatten()
            | "DistinctMembers" >> beam.Distinct()
        )
        decisions = (
            {"root": ref_to_root, "score": ref_to_score}
            | "JoinScores" >> beam.CoGroupByKey()
            | "RootToMember" >> beam.FlatMap(
                lambda item: [(root, (item[0], score))
                              for root in item[1]["root"] for score in item[1]["score"]])
            | "GroupByCluster" >> beam.GroupByKey()
            | "DecideClusters" >> beam.FlatMap(decide_cluster, self.CLUSTER_SAMPLE)
            .with_outputs(CLUSTERS, main="ref_to_decision")
        )
        applied = (
            {"docs": docs | "KeyByRef" >> beam.Map(lambda doc: (doc.sort_key, packed(doc))),
             "decision": decisions.ref_to_decision}
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "ApplyDecisions" >> beam.ParDo(ApplyDecisionFn()).with_outputs(
                REMOVED, STATS, main="kept")
        )
        return {
            "kept": applied.kept,
            REMOVED: applied[REMOVED],
            STATS: (signed[STATS], applied[STATS]) | "FlattenStats" >> beam.Flatten(),
            CLUSTERS: decisions[CLUSTERS],
        }
