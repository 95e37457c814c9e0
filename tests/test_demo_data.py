"""The bundled demo folder holds exactly the four shop tables: nothing else (such as the scored demo
questions with their expected answers) may be loaded into the agents' prompts."""

from pathlib import Path

from autotqa.catalog import Catalog

DEMO = Path(__file__).resolve().parent.parent / "datasets" / "demo"


def test_demo_folder_loads_only_the_shop_tables():
    cat = Catalog.from_sources([DEMO])
    assert sorted(cat.tables) == ["customers", "order_items", "orders", "products"]
    schema = cat.schema().render()
    tables = [line.split()[1] for line in schema.splitlines() if line.startswith("Table ")]
    assert tables == ["customers", "order_items", "orders", "products"]
