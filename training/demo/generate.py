"""Deterministic synthetic news corpus and click log for the demo, the tests and the benchmarks.

Articles belong to story threads (an election, a merger, a tournament...): each thread has
procedurally named entities, its own keywords, one main section and a few days of publications;
articles.jsonl lists threads by first publication, and each line names its "thread". Bodies are
filled in from sentence templates chunk by chunk; click-log events are generated per chunk,
spilled to time buckets on disk and merged in time order, so memory is bounded by the chunk and
bucket sizes plus a few numbers per thread.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from training.demo import vocabulary as vocab
from training.demo.clicklog import ClickLogEncoder, runs
from training.demo.titles import fresh_title

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer needs Python 3.12

HOUR = 3600
DAY = 86_400
BASE_URL = "https://demo.newsrec.example"
SECTIONS: tuple[str, ...] = vocab.SECTIONS

_CHUNK_ARTICLES = 1024  # articles generated per vectorised chunk
_BUCKET_EVENTS = 400_000  # target events per on-disk time bucket
_ENCODE_BATCH = 1 << 17  # events encoded to JSON at once
_DUP_RATE = 0.012  # republished near-duplicates
_BURST_RATE = 0.05  # articles that suddenly spike for an hour or two
_DOUBLE_CLICK = 0.04  # clicks repeated by the same session within minutes
_POP_SIGMAS = (1.0, 0.7)  # lognormal popularity of a thread and of an article within it
_RATE_FIX = 0.83  # compensates bursts and clicks cut off at the end of the period
# Relative reading activity per UTC quarter hour: lowest at 04:00, highest at 16:00.
_DIURNAL = 0.6 - 0.4 * np.cos(2 * np.pi * (np.arange(96) / 4 + 0.125 - 4) / 24)


@dataclass(frozen=True)
class DemoSpec:
    """Size, time span and seed of a synthetic corpus."""

    articles: int = 3000
    days: int = 14
    seed: int = 7
    clicks_per_article: float = 20.0  # mean clicks per article over the period
    end: float = 1_767_225_600.0  # epoch seconds of the corpus's last moment (2026-01-01Z)


@dataclass(frozen=True)
class DemoSummary:
    """What generate() wrote."""

    articles_path: Path
    clicks_path: Path
    articles: int
    clicks: int
    impressions: int
    threads: int
    sections: tuple[str, ...]


class _Generator:
    """Per-thread state and the chunked generation of articles and events."""

    def __init__(self, spec: DemoSpec) -> None:
        if spec.articles < 1 or spec.days < 1 or spec.clicks_per_article < 0:
            raise ValueError(f"invalid demo spec: {spec}")
        self.spec, n = spec, spec.articles
        self.end = math.floor(spec.end)
        self.start = self.end - spec.days * DAY
        self.width = max(6, len(str(n)))
        rng = np.random.default_rng([spec.seed, 0])
        t = max(1, round(n / 15))
        weights = rng.lognormal(0.0, 0.9, t)
        sizes = 1 + rng.multinomial(n - t, weights / weights.sum())
        start = self.start + rng.random(t) * (spec.days * DAY - HOUR)
        span = np.clip(rng.lognormal(np.log(2 * DAY), 0.6, t), 6 * HOUR, 6 * DAY)
        p = np.array(vocab.SECTION_WEIGHTS)
        sec = rng.choice(len(SECTIONS), t, p=p / p.sum())
        alt, pop = rng.integers(0, 1 << 30, t), rng.lognormal(0.0, _POP_SIGMAS[0], t)
        order = np.argsort(start, kind="stable")
        self.t_size, self.t_start, self.t_span = sizes[order], start[order], span[order]
        self.t_sec, self.t_alt, self.t_pop = sec[order], alt[order], pop[order]
        one = len(vocab.NAME_ONSETS) * len(vocab.NAME_MIDDLES) * len(vocab.NAME_ENDINGS)
        self.name_space = one if 3 * t <= one else one * (1 + len(vocab.NAME_MIDDLES))
        self.name_key = int(rng.integers(0, self.name_space))
        self.sess_key = np.uint64(rng.integers(0, 1 << 40))
        mean_pop = math.exp(sum(s * s for s in _POP_SIGMAS) / 2)
        self.rate = spec.clicks_per_article / mean_pop * _RATE_FIX
        per_slot = n * spec.clicks_per_article * math.log(3) / 0.1 / (spec.days * 48)
        self.k_sess = max(256, round(per_slot / 3))  # sessions per half hour, ~3 events each
        expected = math.ceil(n * spec.clicks_per_article * 12.5)
        span_s = spec.days * DAY + 1
        self.buckets = min(65_535, max(-(-expected // _BUCKET_EVENTS), -(-span_s // 65_535)))
        self.bucket_len = -(-span_s // self.buckets)  # < 2**16 seconds

    def name(self, i: int) -> str:
        """Return the procedural proper name number i (distinct within the name space)."""
        i = (i * 1_000_003 + self.name_key) % self.name_space
        ons, mid, end = vocab.NAME_ONSETS, vocab.NAME_MIDDLES, vocab.NAME_ENDINGS
        i, k = divmod(i, len(end))
        parts, middles = [end[k]], 1
        if i >= len(ons) * len(mid):
            i, middles = i - len(ons) * len(mid), 2
        for _ in range(middles):
            i, k = divmod(i, len(mid))
            parts.append(mid[k])
        return ons[i % len(ons)] + "".join(reversed(parts))

    def entities(self, t: int) -> tuple[str, str, str]:
        """Return the place, person and organisation of thread t."""
        first = vocab.FIRST_NAMES[(t * 7 + self.name_key) % len(vocab.FIRST_NAMES)]
        suffixes = vocab.ORG_SUFFIXES[SECTIONS[self.t_sec[t]]]
        org = f"{self.name(3 * t + 2)} {suffixes[int(self.t_alt[t]) % len(suffixes)]}"
        return self.name(3 * t), f"{first} {self.name(3 * t + 1)}", org

    def chunks(self) -> Iterator[tuple[int, int]]:
        """Yield consecutive thread ranges of about _CHUNK_ARTICLES articles."""
        group = np.cumsum(self.t_size) // _CHUNK_ARTICLES
        edges = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(self.t_size)]
        yield from ((a, b) for a, b in itertools.pairwise(edges) if b > a)

    def chunk(self, k: int, lo: int, hi: int, first: int) -> tuple[str, np.ndarray, np.ndarray]:
        """Return the JSON lines and the packed events of the articles of threads lo..hi-1."""
        lx, rng = vocab.lexicon(), np.random.default_rng([self.spec.seed, 1, k])
        sizes = self.t_size[lo:hi]
        n, tfirst = int(sizes.sum()), np.cumsum(sizes) - sizes
        tl = np.repeat(np.arange(hi - lo), sizes)
        pub, src, dup = self._publications(rng, lo, hi, tl, tfirst)
        words = np.clip(rng.lognormal(np.log(400), 0.5, n), 60, 5000)
        n_sent = np.where(dup, 0, np.maximum(2, np.rint(words / lx.words_per_sentence)))
        sec = self.t_sec[lo:hi]
        r = rng.random((hi - lo, int(lx.sec_size.max())))
        r[np.arange(r.shape[1]) >= lx.sec_size[sec][:, None]] = 2.0
        kw = lx.sec_off[sec][:, None] + np.argsort(r, axis=1)[:, :5]
        ents = [self.entities(t) for t in range(lo, hi)]
        text, b_lo, b_hi = self._bodies(rng, sec, tl, n_sent.astype(np.int64), kw, ents)
        picks = rng.integers(0, 1 << 30, (n, 4)).tolist()
        stamps = np.datetime_as_string(pub.astype("datetime64[s]")).tolist()
        titles: list[str] = []
        used: list[set[str]] = [set() for _ in ents]  # each thread's titles so far
        lines: list[str] = []
        q = '","'
        for i, (j, s, root) in enumerate(
            zip(tl.tolist(), sec[tl].tolist(), src.tolist(), strict=True)
        ):
            place, _, org = ents[j]
            key, alt = lx.words[kw[j, 0]], lx.words[kw[j, 1]]  # the thread's lead keywords
            pick = picks[i]
            if dup[i]:
                redo = vocab.REPUBLISHED[pick[0] % len(vocab.REPUBLISHED)]
                title = redo.format(titles[root])
            else:
                nouns = lx.words[lx.sec_off[s] : lx.sec_off[s] + lx.sec_size[s]]
                kws = [lx.words[w] for w in kw[j].tolist()]
                title = fresh_title(SECTIONS[s], ents[j], kws, nouns, pick, used[j])
            titles.append(title)
            secondary = vocab.SECONDARY[SECTIONS[s]]
            section = [SECTIONS[s], *secondary[int(self.t_alt[lo + j]) % len(secondary)]]
            tags = [place.lower(), key, alt, org.split()[0].lower()][: 2 + pick[3] % 3]
            aid, sections, labels = (
                f"demo-{first + i + 1:0{self.width}d}",
                q.join(section),
                q.join(tags),
            )
            lines.append(
                f'{{"id":"{aid}","thread":"thread-{lo + j + 1:0{self.width}d}",'
                f'"title":"{title}","section":["{sections}"],'
                f'"tags":["{labels}"],"url":"{BASE_URL}/{SECTIONS[s]}/{aid}",'
                f'"published_at":"{stamps[i]}Z","body":"{text[b_lo[root] : b_hi[root]]}"}}\n'
            )
        pop = self.t_pop[lo:hi][tl] * rng.lognormal(0.0, _POP_SIGMAS[1], n)
        return "".join(lines), *self._events(rng, pub, pop, first)

    def _publications(
        self, rng: np.random.Generator, lo: int, hi: int, tl: np.ndarray, tfirst: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Publication times of a chunk's articles, and which are republished copies of which
        earlier article of their thread (src: the original; dup: is a copy)."""
        n = tl.size
        pos = np.arange(n) - tfirst[tl]
        span = np.minimum(self.t_span[lo:hi], self.end - self.t_start[lo:hi])
        pub = (self.t_start[lo:hi][tl] + span[tl] * rng.random(n) ** 1.6).astype(np.int64)
        pub = pub[np.lexsort((pub, tl))]
        src = tfirst[tl] + (rng.random(n) * pos).astype(np.int64)
        src = np.where((pos > 0) & (rng.random(n) < _DUP_RATE), src, np.arange(n))
        while (src[src] != src).any():
            src = src[src]
        dup = (src != np.arange(n)) & (pub[src] < self.end - 600)
        src = np.where(dup, src, np.arange(n))
        later = pub[src] + rng.uniform(2 * HOUR, 40 * HOUR, n).astype(np.int64)
        return np.where(dup, np.minimum(self.end, later), pub), src, dup

    def _bodies(
        self,
        rng: np.random.Generator,
        sec: np.ndarray,
        tl: np.ndarray,
        n_sent: np.ndarray,
        kw: np.ndarray,
        ents: list[tuple[str, str, str]],
    ) -> tuple[str, list[int], list[int]]:
        """Return the concatenated bodies of a chunk and each article's character range."""
        lx = vocab.lexicon()
        s_art = np.repeat(np.arange(n_sent.size), n_sent)
        tmpl = rng.integers(0, lx.t_len.size, s_art.size)
        s_len = lx.t_len[tmpl]
        s_end = np.cumsum(s_len)
        s_first = s_end - s_len
        total = int(s_end[-1]) if s_end.size else 0
        flat = np.repeat(lx.t_start[tmpl] - s_first, s_len) + np.arange(total)
        code, art, u = lx.t_code[flat], np.repeat(s_art, s_len), rng.random(total)
        off, size = lx.cls_off[code], lx.cls_size[code]
        for special, base, count in (
            (vocab.SPECIAL["S"], lx.sec_off[sec], lx.sec_size[sec]),
            (vocab.SPECIAL["E"], len(lx.words) + 3 * np.arange(sec.size), np.full(sec.size, 3)),
        ):
            m = code == special
            off[m], size[m] = base[tl[art[m]]], count[tl[art[m]]]
        word = off + (u * size).astype(np.int64)
        m = code == vocab.SPECIAL["K"]
        word[m] = kw[tl[art[m]], (u[m] ** 1.7 * kw.shape[1]).astype(np.int64)]
        sep = lx.t_comma[flat]
        s_last = np.cumsum(n_sent) - 1
        s_sep = np.where(rng.random(s_art.size) < 0.2, 3, 2)
        s_sep[s_last[n_sent > 0]] = 2  # a body ends with ". " whose space is cut below
        sep[s_end - 1] = s_sep
        cap = np.zeros(total, np.int64)
        cap[s_first] = 1
        tok = word * vocab.FORMS + cap * len(vocab.SEPARATORS) + sep
        e_forms = vocab.word_forms([e for trio in ents for e in trio])
        forms = lx.forms + e_forms
        t_end = np.cumsum(np.concatenate([lx.f_len, [len(f) for f in e_forms]])[tok])
        has = n_sent > 0
        b_lo, b_hi = np.zeros(n_sent.size, np.int64), np.zeros(n_sent.size, np.int64)
        first_tok = s_first[(s_last - n_sent + 1)[has]]
        b_lo[has] = np.where(first_tok > 0, t_end[first_tok - 1], 0)
        b_hi[has] = t_end[s_end[s_last[has]] - 1] - 1
        return "".join(map(forms.__getitem__, tok.tolist())), b_lo.tolist(), b_hi.tolist()

    def _events(
        self, rng: np.random.Generator, pub: np.ndarray, pop: np.ndarray, first: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return a chunk's events packed as (second << 32 | article, session << 1 | click)."""
        n, cpa = pub.size, self.spec.clicks_per_article
        ctr = rng.uniform(0.05, 0.15, n)
        lam = self.rate * pop
        a = np.repeat(np.arange(n), rng.poisson(lam / ctr / _DIURNAL.mean()))
        fast = rng.lognormal(np.log(4 * HOUR), 0.5, n)
        scale = np.where(rng.random(a.size) < 0.25, 36 * HOUR, fast[a])
        t = pub[a] + 60 + rng.exponential(1.0, a.size) * scale
        keep = rng.random(a.size) < _DIURNAL[t.astype(np.int64) % DAY // 900]
        b_at, b_len = pub + rng.uniform(3 * HOUR, 72 * HOUR, n), rng.uniform(HOUR, 2 * HOUR, n)
        burst = (rng.random(n) < _BURST_RATE) & (b_at < self.end - HOUR)
        b_n = np.where(burst, np.maximum(lam, cpa) * rng.uniform(1.5, 4.0, n) / ctr, 0.0)
        ab = np.repeat(np.arange(n), rng.poisson(b_n))
        tb = b_at[ab] + rng.random(ab.size) * b_len[ab]
        a, t = np.concatenate([a[keep], ab]), np.concatenate([t[keep], tb])
        a, ts = a[t <= self.end], t[t <= self.end].astype(np.int64) - self.start
        x = (ts // 1800 * self.k_sess + rng.integers(0, self.k_sess, ts.size)).astype(np.uint64)
        x = (x * np.uint64(0x9E3779B97F4A7C15) + self.sess_key) & np.uint64((1 << 40) - 1)
        x = ((x ^ (x >> np.uint64(19))) * np.uint64(0xC2B2AE3D27D4EB4F)) & np.uint64(2**40 - 1)
        tc = ts + rng.integers(3, 121, ts.size)
        click = (rng.random(ts.size) < ctr[a]) & (tc <= self.end - self.start)
        td = tc + rng.integers(20, 601, ts.size)
        again = click & (rng.random(ts.size) < _DOUBLE_CLICK) & (td <= self.end - self.start)
        art = (a + first).astype(np.uint64)
        when = np.concatenate([ts, tc[click], td[again]]).astype(np.uint64) << np.uint64(32)
        sess = np.concatenate([x << np.uint64(1), (x[click] << np.uint64(1)) + np.uint64(1)])
        sess = np.concatenate([sess, (x[again] << np.uint64(1)) + np.uint64(1)])
        return when | np.concatenate([art, art[click], art[again]]), sess


def _write(
    pool: ThreadPoolExecutor,
    pending: deque[Future[int]],
    out: BufferedWriter,
    data: Buffer,
) -> None:
    """Queue data for writing in the background, keeping at most four writes in flight."""
    pending.append(pool.submit(out.write, data))
    while len(pending) > 4 or (pending and pending[0].done()):
        pending.popleft().result()


def generate(out_dir: Path, spec: DemoSpec = DemoSpec(), progress: bool = False) -> DemoSummary:
    """Write out_dir/articles.jsonl and out_dir/clicks.jsonl for spec and summarise them."""
    generator = _Generator(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    articles_path, clicks_path = out_dir / "articles.jsonl", out_dir / "clicks.jsonl"
    with (
        tempfile.TemporaryDirectory(dir=out_dir, prefix=".demo-spill-") as tmp,
        ThreadPoolExecutor(1, thread_name_prefix="demo-writer") as pool,
    ):
        spill = [Path(tmp) / f"{b:05d}.bin" for b in range(generator.buckets)]
        _write_articles(generator, articles_path, spill, pool, progress)
        counts = _write_clicks(generator, clicks_path, spill, pool, progress)
    used = set(generator.t_sec.tolist())
    return DemoSummary(
        articles_path=articles_path,
        clicks_path=clicks_path,
        articles=spec.articles,
        clicks=int(counts[1]),
        impressions=int(counts[0]),
        threads=len(generator.t_size),
        sections=tuple(s for i, s in enumerate(SECTIONS) if i in used),
    )


def _write_articles(
    generator: _Generator, path: Path, spill: list[Path], pool: ThreadPoolExecutor, progress: bool
) -> None:
    """articles.jsonl, chunk by chunk; each chunk's events go to their time buckets on disk."""
    pending: deque[Future[int]] = deque()
    with (
        open(path, "wb") as out,
        tqdm(
            total=generator.spec.articles, desc="articles", unit="art", disable=not progress
        ) as bar,
    ):
        first = 0
        for k, (lo, hi) in enumerate(generator.chunks()):
            text, when, sess = generator.chunk(k, lo, hi, first)
            _write(pool, pending, out, text.encode("ascii"))
            bucket = ((when >> np.uint64(32)) // np.uint64(generator.bucket_len)).astype("u2")
            order = np.argsort(bucket, kind="stable")
            when, sess, bucket = when[order], sess[order], bucket[order]
            for b, i, j in runs(bucket):
                with open(spill[b], "ab") as f:
                    f.write(np.stack([when[i:j], sess[i:j]], axis=1).tobytes())
            done = int(generator.t_size[lo:hi].sum())
            first += done
            bar.update(done)
        while pending:
            pending.popleft().result()


def _write_clicks(
    generator: _Generator, path: Path, spill: list[Path], pool: ThreadPoolExecutor, progress: bool
) -> np.ndarray:
    """clicks.jsonl from the time buckets, each sorted; returns (impressions, clicks)."""
    counts = np.zeros(2, np.int64)
    encoder = ClickLogEncoder(generator.width, generator.start)
    pending: deque[Future[int]] = deque()
    with (
        open(path, "wb") as out,
        tqdm(total=generator.buckets, desc="clicks", unit="bucket", disable=not progress) as bar,
    ):
        for b, bucket in enumerate(spill):
            if bucket.exists():
                data = np.fromfile(bucket, np.uint64).reshape(-1, 2)
                second = (data[:, 0] >> np.uint64(32)) - np.uint64(b * generator.bucket_len)
                order = np.argsort(second.astype("u2"), kind="stable")
                when, sess = data[order, 0], data[order, 1]
                counts += np.bincount((sess & np.uint64(1)).astype(np.int64), minlength=2)
                for s in range(0, when.size, _ENCODE_BATCH):
                    batch = slice(s, s + _ENCODE_BATCH)
                    _write(pool, pending, out, encoder.encode(when[batch], sess[batch]))
                bucket.unlink()
            bar.update(1)
        while pending:
            pending.popleft().result()
    return counts
