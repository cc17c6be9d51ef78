"""Word lists and templates for the synthetic demo corpus (see training.demo_data)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

SEPARATORS = (" ", ", ", ". ", ".\\n\\n")  # after a token; already JSON-escaped
FORMS = 2 * len(SEPARATORS)  # (as written, Capitalised) x separator
SPECIAL = {"E": 0, "K": 1, "S": 2}  # per-article slot classes: entity, keyword, section noun


def _words(text: str) -> tuple[str, ...]:
    """Split a whitespace-separated word list."""
    return tuple(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    """Split a '|'-separated phrase list."""
    return tuple(p.strip() for p in text.split("|"))


SECTIONS: tuple[str, ...] = (
    "world",
    "europe",
    "politics",
    "business",
    "sport",
    "tech",
    "culture",
    "science",
)
SECTION_WEIGHTS: tuple[float, ...] = (0.15, 0.12, 0.15, 0.14, 0.14, 0.12, 0.10, 0.08)

# Secondary sections a thread may also be filed under (the empty tuple = main section only).
SECONDARY: dict[str, tuple[tuple[str, ...], ...]] = {
    "world": ((), (), (), ("politics",), ("business",)),
    "europe": ((), (), ("world",), ("world", "politics"), ("politics",), ("business",)),
    "politics": ((), (), (), ("europe",), ("world",), ("business",)),
    "business": ((), (), (), ("tech",), ("europe",), ("world", "politics")),
    "sport": ((), (), (), (), ("europe",), ("culture",)),
    "tech": ((), (), (), ("business",), ("science",), ("business", "europe")),
    "culture": ((), (), (), (), ("europe",), ("world",)),
    "science": ((), (), (), ("tech",), ("world",)),
}

SECTION_NOUNS: dict[str, tuple[str, ...]] = {
    "world": _words(
        "ceasefire embassy envoy refugees aid conflict militia insurgents peacekeepers diplomats"
        " negotiations hostages earthquake flood drought famine cyclone evacuation troops border"
        " protest uprising coup junta blockade corridor convoy truce mediation delegation"
        " resolution sanctions shelling airstrike displacement monsoon wildfire shelter"
        " reconstruction frontier referendum crackdown amnesty garrison rebels"
    ),
    "europe": _words(
        "eurozone commission bloc treaty summit tariff directive regulation subsidies migration"
        " asylum enlargement accession energy pipeline grid emissions quota fisheries presidency"
        " parliamentarians rapporteur farmers rail roaming competition antitrust cohesion"
        " schengen bailout austerity veto ombudsman euro single market transit corridor"
        " harmonisation candidacy mandate defence procurement stockpile"
    ),
    "politics": _words(
        "parliament coalition ballot referendum budget minister opposition senator campaign"
        " election reform legislation amendment constitution cabinet majority lawmakers policy"
        " tax welfare pension inquiry scandal candidate debate voters turnout polls manifesto"
        " governor committee impeachment lobbying deficit spending immigration healthcare"
        " housing mayor council primary caucus resignation motion bill speaker whip"
    ),
    "business": _words(
        "merger acquisition shares investors earnings revenue profit dividend bonds inflation"
        " interest startup valuation layoffs supply retail exports imports factory output"
        " shareholders takeover bid buyout lender bank loans mortgage stock forecast quarter"
        " consumers prices wages union strike regulator watchdog fine audit bankruptcy"
        " restructuring logistics franchise pricing"
    ),
    "sport": _words(
        "match striker goalkeeper league tournament final semifinal coach transfer"
        " championship medal season stadium fans injury penalty referee squad captain"
        " midfielder defender qualifier playoff derby trophy podium sprint marathon relay lap"
        " grand slam racket circuit pitstop innings wicket batsman try scrum overtime"
        " contract manager relegation promotion kickoff"
    ),
    "tech": _words(
        "platform software chip algorithm smartphone data privacy cloud encryption developers"
        " app browser network robotics semiconductor cybersecurity outage update firmware"
        " processor battery server startup chatbot model compute datacenter broadband fibre"
        " headset wearable drone quantum hackers ransomware breach patch licence open source"
        " code interface subscription streaming"
    ),
    "culture": _words(
        "festival premiere album exhibition gallery novel director actor orchestra theatre"
        " opera ballet museum sculpture poet playwright concert tour soundtrack documentary"
        " memoir biography screenplay choreographer curator retrospective auction painting"
        " sitcom drama series box office award nominee jury anthology costume stage"
        " rehearsal sequel trilogy"
    ),
    "science": _words(
        "study researchers telescope genome vaccine species fossil climate particle experiment"
        " mission orbit asteroid galaxy protein cells enzyme virus trial microbes glacier ocean"
        " coral neurons dataset laboratory probe spacecraft sediment isotope bacteria antibody"
        " molecule reactor fusion biodiversity ecosystem habitat mutation pathogen dinosaur"
        " comet volcano"
    ),
}

# Proper-name suffixes for the organisation of a thread, by main section.
ORG_SUFFIXES: dict[str, tuple[str, ...]] = {
    "world": _words("Front Coalition Authority Council"),
    "europe": _words("Council Union Forum Agency"),
    "politics": _words("Party Alliance Movement Bloc"),
    "business": _words("Group Holdings Capital Industries"),
    "sport": _words("United Rovers Athletic City"),
    "tech": _words("Labs Systems Networks Robotics"),
    "culture": _words("Theatre Ensemble Records Studios"),
    "science": _words("Institute Observatory Foundation Laboratory"),
}

FIRST_NAMES = _words(
    "Anna Marek Sofia Lukas Elena Tomas Ines Pavel Clara Jonas Maya Omar Lena Rafael Nadia"
    " Victor Ida Mateo Zara Felix Nora Hugo Alma Emil Rosa Karim Lea Andrei Selma Tariq Greta"
    " Ivo Amira Leon Hana Dario Yara Oskar Mira Teo Petra Samir Vera Jakob Luisa Bruno Edith"
)

# Syllables for procedural names: onset + middle (one or two) + ending, e.g. Vel-tra-no.
NAME_ONSETS = _words(
    "Vel Kas Or Tal Mir Bel Dra Sen Zor Al Ker Lu Fen Is Ro Var Nim Tor Gal Sel Quin Hal Ost"
    " Pra Jun Cor Del Em Bru Il Ma Ne Sar Tev Ul Ya"
)
NAME_MIDDLES = _words("tra ma ri ve lo sa ne ko di la re mo ta vi za be li do ga se nu pe ro ka mi")
NAME_ENDINGS = _words(
    "no ria sk nov nia na rix rad lla ron lun nik dos vak lei dun ssa ton via mar nes ko rin dal vo"
)

GENERAL_NOUNS = _words(
    "week month year plan report statement decision deal proposal process system question issue"
    " situation change impact concern pressure support interest future risk growth crisis"
    " agreement response review warning target vote record share level demand delay programme"
    " project strategy approach framework timetable outcome debate tension momentum confidence"
    " uncertainty priority progress setback compromise message signal deadline backlash"
)
VERBS = _words(
    "approved rejected backed criticised delayed reviewed announced defended questioned"
    " welcomed unveiled blocked challenged expanded raised praised dismissed confirmed denied"
    " proposed outlined launched postponed revised endorsed condemned scrapped accelerated"
    " examined tested described highlighted downplayed resisted supported finalised signalled"
    " investigated disputed"
)
ADJECTIVES = _words(
    "controversial major new key significant sudden fragile far-reaching long-awaited costly"
    " modest sweeping crucial divisive bold cautious temporary widespread limited renewed"
    " growing serious rare historic complex pressing surprising tentative broad decisive"
    " familiar difficult public formal preliminary final separate lengthy"
)
TIME_PHRASES = _phrases(
    "on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|on Saturday|on Sunday|last week"
    "|earlier this month|late on Thursday|this morning|overnight|in recent weeks"
    "|for the first time|after months of talks|at the weekend|earlier this year|last night"
)
SOURCES = _phrases(
    "officials|analysts|critics|experts|a spokesperson|local media|observers|insiders"
    "|people familiar with the matter|residents|campaigners|economists|senior figures"
    "|supporters|two sources"
)

# Body sentence templates. Slots: {E} thread entity, {K} thread keyword, {S} section noun,
# {N} general noun, {V} past-tense verb, {A} adjective, {T} time phrase, {Q} source.
# A trailing comma after a slot or word is kept; the full stop is added by the generator.
SENTENCES: tuple[str, ...] = (
    "{E} {V} the {A} {K} {T}",
    "{Q} said the {K} would put new pressure on {E}",
    "the {S} {V} the {N} after weeks of {A} debate",
    "according to {Q}, the {A} {K} could change the {N} of the {S}",
    "{T}, {E} {V} the {A} {S} on the {K}",
    "critics {V} the {K} as {A}, while {Q} {V} the {N}",
    "the {N} around the {K} has become a {A} test for {E}",
    "it was not clear whether {E} would accept the {K} before the {S}",
    "the {K} remains {A}, {Q} said {T}",
    "{E} and {E} {V} the {N} of the {A} {S}",
    "many {Q} {V} the {S}, but {E} {V} the {K}",
    "{Q} close to {E} described the {K} as {A}",
    "the {A} {S} is expected to affect the {K} and the wider {N}",
    "in {E}, the {K} {V} a {A} {N} among {Q}",
    "{E} has {V} the {K} for the {N} of the {S}",
    "the latest {S} figures {V} the {A} {N} facing {E}",
    "{Q} expect the {K} to dominate the {N} {T}",
    "the {K} was {V} by {E} {T}",
    "the {A} {S} from {E} {V} the {K}, {Q} said",
    "{E} {V} the {K} and the {A} {N}",
    "there is {A} {N} over the {K} in {E}",
    "the {N} of the {K} will depend on the {S} and on {E}",
    "{Q} warned that the {K} could reshape the {S} in {E}",
    "supporters of the {K} {V} the {A} {N}",
    "the {S} and the {K} have {V} the {N} {T}",
    "{E} is under {A} pressure to explain the {K}",
    "the {K} follows a {A} {N} for the {S}",
    "few {Q} expected the {K} to move this quickly",
    "{E} {V} the {S} and the {K} in a {A} statement",
    "the {A} {K} marks a turning point for {E}, {Q} said",
    "details of the {K} were {V} {T}",
    "the {N} is the most {A} since the {S} began",
)

# Title templates. Slots: {place}, {person}, {org} (thread entities), {kw} thread keyword,
# {noun} section noun. Each fills to 6-10 words; republished copies add a short marker.
TITLES: dict[str, tuple[str, ...]] = {
    "world": (
        "{person} urges calm as {kw} tensions rise in {place}",
        "Aid convoy reaches {place} after {kw} delays",
        "{org} monitors report new {kw} clashes near {place}",
        "Talks on {place} {kw} end without a deal",
        "{person} meets {org} leaders over {place} {kw}",
        "Satellite images show {kw} damage across {place}",
        "Neighbours close borders as {place} {kw} spreads",
        "{place} ceasefire talks resume as {kw} concerns grow",
        "Envoy {person} arrives in {place} amid {kw} fears",
        "Thousands flee {place} as the {kw} worsens",
        "{org} accuses {place} of breaking {kw} agreement",
        "What the {place} {kw} means for the region",
    ),
    "europe": (
        "{person} defends {place} stance on {kw} reform",
        "{place} farmers protest against {kw} quotas",
        "Court ruling on {kw} deals blow to {place}",
        "{org} backs {person} plan for {kw} fund",
        "Brussels gives {place} more time on {kw} targets",
        "Summit in {place} ends with {kw} compromise",
        "{place} votes to tighten {kw} controls",
        "{place} and Brussels clash over new {kw} rules",
        "EU ministers meet in {place} to discuss {kw}",
        "{person} warns of {kw} crisis across the bloc",
        "{org} calls for fresh {kw} talks in {place}",
        "Brussels opens {noun} probe into {place} {kw} plan",
    ),
    "politics": (
        "{person} unveils {kw} bill in {place}",
        "Poll shows {org} losing ground over {kw}",
        "{place} minister resigns in {kw} row",
        "{person} and {org} trade blows over {kw} costs",
        "Committee to question {person} on {kw} spending",
        "{org} leader promises {kw} review after {noun} defeat",
        "Backbench revolt threatens {place} {kw} plan",
        "Parliament vote on {place} {kw} delayed again",
        "{person} faces pressure over {kw} in {place}",
        "{org} pushes {kw} reform ahead of {noun} vote",
        "Opposition demands inquiry into {place} {kw} deal",
        "Coalition talks in {place} stall over {kw}",
    ),
    "business": (
        "{org} profits fall as {kw} costs bite",
        "{place} regulator clears {org} {kw} takeover",
        "{org} to cut jobs in {place} {kw} unit",
        "{person} bets on {kw} growth at {org}",
        "{org} raises {kw} forecast after strong quarter",
        "Unions in {place} strike over {org} {kw} plan",
        "{org} bonds slide on {kw} worries",
        "{org} shares jump after {kw} deal with {place}",
        "{org} agrees {kw} merger worth billions",
        "Investors weigh {org} {kw} plan as markets slip",
        "{person} to step down as {org} chief",
        "{place} {kw} slowdown hits {noun} outlook",
    ),
    "sport": (
        "{org} coach {person} under fire after {kw} defeat",
        "{place} crowd roars as {org} clinch {kw} title",
        "{person} ruled out of {kw} decider",
        "{org} fined after {kw} fixture in {place}",
        "Late goal sends {org} into {kw} semi-final",
        "{person} breaks {kw} record in {place}",
        "{org} fans mark {kw} comeback in {place}",
        "{org} beat {place} in dramatic {kw} final",
        "{person} signs new deal with {org} before {kw}",
        "{place} {kw} tournament: five things we learned",
        "Injury blow for {org} ahead of {kw} clash",
        "{person} leads {org} to {kw} win in {place}",
    ),
    "tech": (
        "{org} shares fall after {kw} glitch",
        "{person} joins {org} to lead {kw} research",
        "{place} startup challenges {org} on {kw}",
        "{org} fixes {kw} flaw found by {person}",
        "Users in {place} report {org} {kw} outage",
        "{org} buys {place} {kw} firm",
        "{person} warns {kw} rules could stall {org}",
        "{org} unveils new {kw} platform in {place}",
        "Regulators probe {org} over {kw} data practices",
        "{person} says {org} will open its {kw} code",
        "{place} outage puts {kw} security in spotlight",
        "{org} delays {kw} launch after {noun} problems",
    ),
    "culture": (
        "{person} opens up about {kw} in new interview",
        "{org} cancels {place} {kw} tour dates",
        "Critics split over {person} {kw} debut",
        "{place} museum acquires rare {kw} collection",
        "{org} announces {kw} season in {place}",
        "{person} {kw} film tops {place} box office",
        "Tributes pour in for {kw} pioneer {person}",
        "{place} festival opens with a {kw} premiere",
        "{person} returns with a bold new {kw} project",
        "Review: {org} stages a striking {kw} in {place}",
        "{place} {kw} exhibition draws record crowds",
        "{person} wins {noun} award for {kw} in {place}",
    ),
    "science": (
        "{org} telescope captures {kw} images over {place}",
        "{person} wins grant to map {kw} in {place}",
        "Experts question {org} {kw} findings",
        "{place} lab reports {kw} trial results",
        "{org} launches {kw} probe from {place}",
        "{person} explains what the {kw} data show",
        "Researchers in {place} sequence {kw} samples",
        "Scientists in {place} report {kw} breakthrough",
        "{org} mission to study {kw} gets green light",
        "New study links {kw} to rising {noun} in {place}",
        "{person} leads {org} team tracking {kw} changes",
        "Why the {place} {kw} discovery matters",
    ),
}

# How a republished copy's title differs from the original's.
REPUBLISHED: tuple[str, ...] = ("Updated: {}", "{} (updated)", "Corrected: {}", "{}, officials say")


@dataclass(frozen=True)
class Lexicon:
    """The vocabulary and sentence templates as lookup arrays for vectorised filling."""

    words: tuple[str, ...]  # base words and phrases
    forms: tuple[str, ...]  # form of word w, capitalised c, separator s at w*FORMS + c*4 + s
    f_len: np.ndarray
    cls_off: np.ndarray  # first base word of each slot class (the SPECIAL ones vary)
    cls_size: np.ndarray
    sec_off: np.ndarray  # first base word of each section's nouns
    sec_size: np.ndarray
    t_start: np.ndarray  # sentence templates, flattened to slots
    t_len: np.ndarray
    t_code: np.ndarray
    t_comma: np.ndarray
    words_per_sentence: float


def word_forms(words: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return every (word, capitalisation, separator) form of words."""
    caps = ((w, w[:1].upper() + w[1:]) for w in words)
    return tuple(c + sep for pair in caps for c in pair for sep in SEPARATORS)


@cache
def lexicon() -> Lexicon:
    """Compile the vocabulary and sentence templates into lookup arrays."""
    words: list[str] = []
    classes: dict[str, int] = dict(SPECIAL)
    cls_off, cls_size = [0, 0, 0], [1, 1, 1]
    avg: dict[str, float] = {"E": 5 / 3, "K": 1.0, "S": 1.0}

    def add(name: str, items: tuple[str, ...]) -> None:
        classes[name] = len(cls_off)
        cls_off.append(len(words))
        cls_size.append(len(items))
        avg[name] = sum(len(i.split()) for i in items) / len(items)
        words.extend(items)

    for name, items in (("N", GENERAL_NOUNS), ("V", VERBS), ("A", ADJECTIVES)):
        add(name, items)
    add("T", TIME_PHRASES)
    add("Q", SOURCES)
    sizes = [len(SECTION_NOUNS[s]) for s in SECTIONS]
    sec_off = [len(words) + sum(sizes[:i]) for i in range(len(sizes))]
    words.extend(w for s in SECTIONS for w in SECTION_NOUNS[s])
    t_start: list[int] = []
    t_len: list[int] = []
    codes: list[int] = []
    commas: list[bool] = []
    lengths: list[float] = []
    for template in SENTENCES:
        t_start.append(len(codes))
        # Each slot, and each run of literal words, is one token; a trailing comma is kept apart.
        for piece in (p.strip() for p in re.split(r"(\{\w\},?)", template)):
            key = piece.rstrip(",").strip("{}")
            if not key:
                continue
            if key not in classes:
                add(key, (key,))
            codes.append(classes[key])
            commas.append(piece.endswith(","))
            lengths.append(avg[key])
        t_len.append(len(codes) - t_start[-1])
    assert not any(c in w for w in words for c in '"\\'), "vocabulary must not need escaping"
    all_forms = word_forms(words)
    return Lexicon(
        words=tuple(words), forms=all_forms, f_len=np.array([len(f) for f in all_forms]),
        cls_off=np.array(cls_off), cls_size=np.array(cls_size), sec_off=np.array(sec_off),
        sec_size=np.array(sizes), t_start=np.array(t_start), t_len=np.array(t_len),
        t_code=np.array(codes), t_comma=np.array(commas, np.int64),
        words_per_sentence=sum(lengths) / len(SENTENCES),
    )  # fmt: skip
