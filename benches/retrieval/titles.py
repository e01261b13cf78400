"""N distinct synthetic product titles for the retrieval benchmark
(benches/retrieval/run.sh): brand, colour, material, product type and an
attribute drawn from fixed vocabularies, so that a catalogue of 100k items
has the clustered shape of a real one (many near-duplicates within a
product type, far fewer across). Deterministic from the seed.

usage: titles.py N SEED > titles.txt
"""
import random
import sys

BRANDS = """Acme Northwind Contoso Fabrikam Globex Initech Umbrella Stark Wayne Hooli Vandelay Tyrell
Cyberdyne Soylent Aperture Wonka Gringotts Oscorp Monarch Duff Krusty Bluth Pied Zorg Nakatomi Virtucon
Massive Dynamic Gekko Prestige Sirius Spacely Cogswell Ollivander Buy-n-Large Blue Sun Rekall Weyland
Yoyodyne Omni Wolfram Ajax Apex Summit Harbor Meadow Cedar Granite Ember Polar Coastal Urban Alpine""".split()
COLOURS = "black white navy red olive grey beige pink teal mustard burgundy charcoal ivory sky-blue forest-green".split()
MATERIALS = "cotton wool linen leather denim silk cashmere polyester bamboo stainless-steel ceramic oak walnut glass aluminium recycled-plastic".split()
PRODUCTS = {
    "clothing": "t-shirt shirt hoodie sweater cardigan jacket raincoat parka jeans chinos shorts skirt dress leggings pyjamas socks scarf beanie cap gloves".split(),
    "shoes": "sneakers running-shoes hiking-boots ankle-boots loafers sandals slippers trainers".split(),
    "bags": "backpack tote-bag duffel-bag laptop-sleeve wallet belt-bag suitcase".split(),
    "home": "mug teapot frying-pan saucepan chef-knife cutting-board bowl plate vase lamp throw-blanket cushion rug towel bedsheet".split(),
    "electronics": "headphones earbuds bluetooth-speaker power-bank phone-case charger keyboard mouse monitor-stand webcam smartwatch-strap".split(),
    "outdoors": "tent sleeping-bag camping-stove water-bottle trekking-poles headlamp hammock cooler".split(),
    "toys": "building-blocks puzzle plush-bear board-game kite yo-yo toy-car doll-house".split(),
    "beauty": "face-cream shampoo conditioner lip-balm perfume hand-soap body-lotion sunscreen".split(),
}
ATTRIBUTES = """slim-fit oversized waterproof lightweight insulated breathable handmade organic vintage classic
minimalist foldable ergonomic wireless noise-cancelling quick-dry non-stick dishwasher-safe kids women's men's
unisex travel-size family-size 2-pack 3-pack limited-edition eco-friendly heavy-duty compact""".split()
SIZES = "XS S M L XL XXL 250ml 500ml 1L 2L 10-inch 12-inch 15-inch one-size".split()


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    r = random.Random(seed)
    seen = set()
    cats = list(PRODUCTS)
    while len(seen) < n:
        cat = r.choice(cats)
        words = [r.choice(BRANDS)]
        if r.random() < 0.7:
            words.append(r.choice(ATTRIBUTES))
        if r.random() < 0.8:
            words.append(r.choice(COLOURS))
        if r.random() < 0.6:
            words.append(r.choice(MATERIALS))
        words.append(r.choice(PRODUCTS[cat]))
        if r.random() < 0.5:
            words.append(r.choice(SIZES))
        t = " ".join(w.replace("-", " ") for w in words)
        if t not in seen:
            seen.add(t)
            print(t)


if __name__ == "__main__":
    main()
