"""The project's own English sentences: phonetically rich, generated from a small hand-written grammar.

Nothing here is copied from a corpus. :func:`sentence_pool` returns a fixed list (the same on every machine
and for every corpus seed) of :data:`POOL_SIZE` distinct sentences of 7-16 words (about 2.5-5 s of
speech, like VOCASET's). The word lists were written so that every ARPAbet phoneme occurs many times,
including the rare ones (ZH: *measure, vision, beige*; OY: *boy, noise, voice*; UH: *book, wood, sugar*;
NG, TH, DH, CH, JH, Y, AW); the tests check the coverage with the synthesizers' own phoneme output.
"""

from __future__ import annotations

import numpy as np

POOL_SIZE = 240

_HANDWRITTEN = (
    "The boy enjoyed the noisy toy, but his mother was not amused.",
    "Usually she measures the beige fabric twice before cutting it.",
    "A yellow kite rose above the thatched roof of the cottage.",
    "Choose the cheapest juice, the judge said with a grin.",
    "My brother thought the weather would be rather smooth this month.",
    "Put the good books back on the wooden shelf by the window.",
    "Pleasant visions of treasure kept the sailors awake at night.",
    "How loudly the crowd shouted when the brown cow wandered out!",
    "Young Yvonne played the violin beautifully in the huge hall.",
    "Nothing could ever persuade the old king to change his mind.",
    "Sugar and butter should be mixed in a big bowl first.",
    "The foggy morning made the village look quiet and mysterious.",
    "Please pass the peppered beef and the fresh green peas.",
    "We watched the waves wash over the wet wooden pier.",
    "Their choir sang joyful songs under the shadow of the oak.",
    "Her decision to leave the garage open was a casual mistake.",
    "The thirsty athlete drank three bottles of cool water.",
    "A thousand voices joined the chorus at the azure lake.",
    "Keep your voice down, the baby is finally asleep upstairs.",
    "Ripe plums and apples fell from the branches in the orchard.",
    "The mayor vowed to mend the bridge before the autumn floods.",
    "Fetch the ladder and fix the broken shutter on the porch.",
    "Ocean breezes cooled the beach during the long summer evening.",
    "Each genius needs a little leisure to think about the universe.",
    "Charlie measured the width of the bathtub with a yellow ruler.",
    "Mom bought a bamboo broom and a bulb for the lamp.",
    "Five vivid violets grew beside the fence of the farm.",
    "The sheriff showed the thief the shiny badge on his shirt.",
    "Could you bring the map and the compass when you come?",
    "Joyce avoided the oily puddle near the corner of the road.",
)

_ADJ = (
    "tiny", "gloomy", "cheerful", "jolly", "beige", "yellow", "quiet", "thoughtful", "huge", "royal",
    "smooth", "loyal", "shaggy", "brave", "lazy", "shiny", "curious", "young", "ancient", "proud",
    "wooden", "noisy", "pleasant", "rough", "ugly", "fuzzy", "thirsty", "vivid", "gentle", "mouthy",
)  # fmt: skip
_NOUN = (
    "boy", "judge", "sailor", "cowboy", "nephew", "teacher", "butcher", "geologist", "mother", "author",
    "plumber", "baker", "cook", "usher", "farmer", "thief", "youth", "lawyer", "fisherman", "singer",
    "shepherd", "voyager", "jeweler", "zookeeper", "mayor", "guitarist", "doorman", "pilot", "king", "wolf",
)  # fmt: skip
_VERB = (
    "measured", "painted", "pushed", "borrowed", "fixed", "washed", "enjoyed", "chose", "threw", "caught",
    "bought", "weighed", "smoothed", "polished", "shook", "pulled", "hugged", "juggled", "found", "moved",
    "stitched", "tossed", "judged", "sketched", "loaded", "rejoiced over", "looked at", "cooked", "shared",
    "thanked",
)  # fmt: skip
_OBJ = (
    "the treasure chest", "a purple umbrella", "the heavy anchor", "a jar of honey", "the leather boots",
    "a bowl of soup", "the oyster shells", "a bag of coins", "the beige garage door", "a huge pumpkin",
    "the wooden spoon", "a bunch of grapes", "the vision of the future", "a pair of gloves", "the thick rope",
    "a basket of cherries", "the noisy engine", "a cup of sugar", "the golden ring", "a bottle of juice",
    "the azure vase", "a fishing rod", "the torn map", "a cozy pillow", "the thin needle",
    "a sack of potatoes", "the oily chain", "a yellow whistle", "the foggy mirror", "a loaf of bread",
)  # fmt: skip
_WHERE = (
    "near the church", "by the harbor", "in the garage", "on the beach", "at the zoo",
    "behind the barn", "under the bridge", "beside the pool", "in the village square", "at the theater",
    "through the jungle", "along the shore", "inside the cabin", "outside the house", "in the kitchen",
    "on the mountain", "across the valley", "at the museum", "near the foyer", "by the old mill",
)  # fmt: skip
_WHEN = (
    "every Thursday", "this morning", "at dawn", "last autumn", "yesterday evening", "once again",
    "without a pause", "with much joy", "in the usual way", "just in time", "before the storm",
    "after the show", "during the holiday", "at noon", "all through June",
)  # fmt: skip
_NAMES = (
    "Zoe", "Joshua", "Ruth", "Noah", "Judith", "Theo", "Molly", "George", "Yusuf", "Charlotte",
    "Hugo", "Vivian", "Boyd", "Sean", "Maya", "Arthur", "Owen", "Gwen", "Leon", "Paula",
)  # fmt: skip
_TEMPLATES = (
    "The {adj} {noun} {verb} {obj} {where}.",
    "{name} said the {adj} {noun} {verb} {obj} {when}.",
    "{when_cap}, the {noun} {verb} {obj} {where}.",
    "Why has the {adj} {noun} {verb} {obj} {where}?",
    "{name} and the {noun} {verb} {obj} {when}.",
    "I thought the {adj} {noun} {verb} {obj} {where} {when}.",
    "The {noun} {verb} {obj}, and {name} laughed {where}.",
    "Did {name} see how the {adj} {noun} {verb} {obj}?",
)


def sentence_pool(size: int = POOL_SIZE) -> list[str]:
    """A fixed list of ``size`` distinct sentences: the hand-written ones first, then grammar output.

    The list depends only on ``size`` (it is generated with a fixed internal seed), so sentence ``k``
    is the same text on every machine and for every corpus seed.
    """
    if size < 1:
        raise ValueError(f"sentence pool size must be positive, got {size}")
    rng = np.random.default_rng(20250101)
    out: list[str] = list(_HANDWRITTEN[:size])
    seen = set(out)
    attempts = 0
    while len(out) < size:
        attempts += 1
        if attempts > 100 * size:  # pragma: no cover - the grammar has millions of sentences
            raise RuntimeError("could not generate enough distinct sentences")
        tpl = _TEMPLATES[len(out) % len(_TEMPLATES)]
        when = str(rng.choice(_WHEN))
        s = tpl.format(
            adj=rng.choice(_ADJ),
            noun=rng.choice(_NOUN),
            verb=rng.choice(_VERB),
            obj=rng.choice(_OBJ),
            where=rng.choice(_WHERE),
            when=when,
            when_cap=when[0].upper() + when[1:],
            name=rng.choice(_NAMES),
        )
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
