"""Words of names and questions: the one tokeniser, stemmer and stop list of the project.

The catalog matches names against each other (key detection, ``keys.py``) and against questions
(schema linking, ``linking.py``); the agents ask which tables a question names. All of them cut
identifiers and questions into words here and compare the words' stems, so "customers",
"Customer" and "customer_id" meet wherever they are compared.
"""

from __future__ import annotations

import re

#: Function words: never evidence that a question is about a table, column or value.
STOP_WORDS = frozenset("""
a about after all also an and any are as at be been before by can did do does each every find for
from get give had has have how i in into is it its list me more most much my not of on or per show
than that the their them there these they this those to was were what when where which who whom
whose why will with you your
""".split())
#: Words of the question's form ("how many", "the total", "top"): they say what to compute, not
#: which table to read, so a table that owns a column ``total`` is not "named" by them.
QUESTION_WORDS = frozenset(
    "average between count least less many number over sum tell top total under".split())


def name_tokens(name: str) -> list[str]:
    """Lowercase word tokens of an identifier (underscores, spaces, camelCase).

    >>> name_tokens("media_typeId"), name_tokens("StuID"), name_tokens("Budget in Billions")
    (['media', 'type', 'id'], ['stu', 'id'], ['budget', 'in', 'billions'])
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return re.findall(r"[a-z0-9]+", spaced.lower())


def stem(word: str) -> str:
    """A cheap English stem: plural to singular, a past tense to its verb ("ordered" meets "orders").

    >>> [stem(w) for w in ["Customers", "addresses", "countries", "courses", "ordered", "status",
    ...                    "class", "analysis", "media", "speed"]]
    ['customer', 'address', 'country', 'course', 'order', 'status', 'class', 'analysis', 'media', 'speed']
    """
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith(("sses", "xes", "ches", "shes")):
        return w[:-2]
    if len(w) > 5 and w.endswith("ed") and not w.endswith("eed"):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def question_terms(text: str) -> set[str]:
    """Stems of a question's words, function words dropped (numbers stay: they match values).

    >>> sorted(question_terms("Which customers from Lisbon placed the most orders in 2019?"))
    ['2019', 'customer', 'lisbon', 'order', 'plac']
    """
    return {stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS}


def name_terms(name: str, *, min_len: int = 1) -> list[str]:
    """Stems of an identifier's words of at least ``min_len`` letters.

    >>> name_terms("Order_Items"), name_terms("StuID", min_len=3)
    (['order', 'item'], ['stu'])
    """
    return [stem(t) for t in name_tokens(name) if len(t) >= min_len]


def content_words(text: str) -> list[str]:
    """Stems of the words a question could name a table or column with: three letters or more,
    starting with a letter, neither a function word nor a word of the question's form.

    >>> content_words("How many customers ordered more than 3 products in total?")
    ['customer', 'order', 'product']
    """
    return [stem(w) for w in re.findall(r"[a-z][a-z0-9]*", text.lower())
            if len(w) >= 3 and w not in STOP_WORDS and w not in QUESTION_WORDS]
