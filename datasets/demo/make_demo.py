"""Generate the demo tables (a small shop) once, with a fixed seed.

Run from the repository root: ``python datasets/demo/make_demo.py``. The CSVs are committed, so the
demo questions in README.md keep their answers; re-running writes byte-identical files.

The data is realistic but a little messy on purpose, as real exports are: a few missing cities and
ship dates, and ``customers.segment`` spelled with inconsistent capitalisation.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611

FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Katrin",
         "Lukas", "Mia", "Noah", "Olivia", "Paul", "Rosa", "Simon", "Tara", "Umar", "Vera", "Wim",
         "Yara", "Zoe"]
LAST = ["Berg", "Costa", "Dahl", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Keller",
        "Lopez", "Meyer", "Novak", "Olsen", "Petrov", "Quinn", "Rossi", "Schmidt", "Weber", "Young"]
CITIES = [("Berlin", "Germany"), ("Munich", "Germany"), ("Hamburg", "Germany"), ("Paris", "France"),
          ("Lyon", "France"), ("Madrid", "Spain"), ("Rome", "Italy"), ("Vienna", "Austria")]
SEGMENTS = ["Consumer", "Corporate", "Small Business"]
PRODUCTS = [  # name, category, unit price
    ("Espresso Beans 1kg", "Coffee", 18.90), ("Filter Coffee 500g", "Coffee", 9.50),
    ("Decaf Beans 500g", "Coffee", 11.20), ("Green Tea 100g", "Tea", 6.40),
    ("Earl Grey 100g", "Tea", 5.80), ("Chai Blend 250g", "Tea", 8.90),
    ("French Press", "Equipment", 34.00), ("Pour-Over Kit", "Equipment", 42.50),
    ("Electric Grinder", "Equipment", 89.00), ("Milk Frother", "Equipment", 29.90),
    ("Ceramic Mug", "Accessories", 12.00), ("Travel Tumbler", "Accessories", 21.50),
    ("Paper Filters x100", "Accessories", 4.20), ("Cleaning Tablets", "Accessories", 7.30),
    ("Barista Course", "Services", 120.00), ("Espresso Machine", "Equipment", 349.00),
    ("Cold Brew Bottle", "Equipment", 24.90), ("Oat Milk 1L", "Grocery", 2.60),
    ("Chocolate Biscuits", "Grocery", 3.40), ("Vanilla Syrup", "Grocery", 6.90)]
STATUSES = ["delivered"] * 7 + ["shipped"] * 2 + ["cancelled", "returned"]


def _segment(rng: random.Random) -> str:
    seg = rng.choice(SEGMENTS)
    roll = rng.random()  # exports from three different systems: mixed capitalisation
    return seg.lower() if roll < 0.15 else seg.upper() if roll < 0.22 else seg


def build(rng: random.Random) -> dict[str, list[dict[str, object]]]:
    customers = []
    names = set()
    for cid in range(1, 81):
        while True:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if name not in names:
                names.add(name)
                break
        city, country = rng.choice(CITIES)
        customers.append({
            "customer_id": cid, "name": name, "email": f"{name.lower().replace(' ', '.')}@example.com",
            "city": "" if rng.random() < 0.05 else city, "country": country, "segment": _segment(rng),
            "signup_date": (dt.date(2022, 1, 1) + dt.timedelta(days=rng.randrange(700))).isoformat()})
    products = [{"product_id": 100 + i, "name": n, "category": c, "unit_price": f"{p:.2f}"}
                for i, (n, c, p) in enumerate(PRODUCTS)]
    orders, items = [], []
    for oid in range(1001, 1301):
        cust = rng.choice(customers[: 60 if rng.random() < 0.8 else 80])
        signup = dt.date.fromisoformat(str(cust["signup_date"]))
        order_date = signup + dt.timedelta(days=rng.randrange(1, 400))
        status = rng.choice(STATUSES)
        shipped = "" if status == "cancelled" or rng.random() < 0.04 else \
            (order_date + dt.timedelta(days=rng.randrange(1, 6))).isoformat()
        orders.append({"order_id": oid, "customer_id": cust["customer_id"],
                       "order_date": order_date.isoformat(), "ship_date": shipped, "status": status})
        for prod in rng.sample(products, rng.choice([1, 1, 2, 2, 3, 4])):
            qty = rng.choice([1, 1, 1, 2, 2, 3, 5])
            discount = rng.choice([0, 0, 0, 0, 5, 10])
            items.append({"order_id": oid, "product_id": prod["product_id"], "quantity": qty,
                          "discount_pct": discount})
    return {"customers": customers, "products": products, "orders": orders, "order_items": items}


def main() -> None:
    for table, rows in build(random.Random(SEED)).items():
        with open(HERE / f"{table}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        print(f"{table}.csv: {len(rows)} rows")


if __name__ == "__main__":
    main()
