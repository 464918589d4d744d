#!/usr/bin/env python3
"""Writes the benchmark's request bodies into the directory given as the only argument.

body.xml                 a ~1 KiB order (the authentication cases)
order10k.xml             a ~10 KiB namespaced order whose o:Header/o:SenderId is 123456789 (ACME)
order10k-other.xml       the same order naming 987654321 (GLOBEX, another partner)
orders.edi               an EDIFACT ORDERS interchange sent by 4000001000002:14 (ACME)
orders-other.edi         the same interchange sent by 4000001000019:14 (GLOBEX)
"""

import os
import sys


def small_order():
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<Order xmlns="urn:example:orders">',
             '  <Header><SenderId>ACME-SUPPLY-0042</SenderId><ReceiverId>BUYER-7</ReceiverId>',
             '    <OrderNumber>PO-2026-000123</OrderNumber><OrderDate>2026-11-25</OrderDate></Header>']
    i = 0
    while sum(len(l) + 1 for l in lines) < 1000:
        i += 1
        lines.append(f'  <Item><Line>{i}</Line><Sku>SKU-{i:05d}</Sku><Qty>{i * 3}</Qty><Price>{i * 7}.50</Price></Item>')
    lines.append('</Order>')
    return "\n".join(lines)[:1024]


def order_10k(sender):
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<o:Order xmlns:o="urn:example:order" xmlns:a="urn:example:address">',
        '  <o:Header>',
        f'    <o:SenderId>{sender}</o:SenderId>',
        '    <o:ReceiverId>5000000000003</o:ReceiverId>',
        '    <o:OrderNumber>PO-2026-000123</o:OrderNumber>',
        '    <o:OrderDate>2026-11-25</o:OrderDate>',
        '    <o:Currency>EUR</o:Currency>',
        '    <a:ShipTo><a:Name>Buyer Seven GmbH</a:Name><a:Street>Hafenstrasse 7</a:Street>'
        '<a:City>Hamburg</a:City><a:Country>DE</a:Country></a:ShipTo>',
        '  </o:Header>',
        '  <o:Items>',
    ]
    tail = ['  </o:Items>', '</o:Order>']
    items = []
    i = 0
    size = lambda: sum(len(l) + 1 for l in head + items + tail)
    while size() < 10 * 1024 - 200:
        i += 1
        items.append(f'    <o:Item><o:Line>{i}</o:Line><o:Sku>SKU-{i:05d}</o:Sku><o:Gtin>40{i:011d}</o:Gtin>'
                     f'<o:Qty unit="PCE">{i * 3}</o:Qty><o:Price>{i * 7}.50</o:Price></o:Item>')
    return "\n".join(head + items + tail) + "\n"


def orders_edi(sender):
    segs = [
        f"UNB+UNOC:3+{sender}:14+5000000000003:14+261125:1200+REF0000123",
        "UNH+1+ORDERS:D:96A:UN:EAN008",
        "BGM+220+PO-2026-000123+9",
        "DTM+137:20261125:102",
        "DTM+2:20261202:102",
        "NAD+BY+5000000000003::9",
        f"NAD+SU+{sender}::9",
        "CUX+2:EUR:9",
    ]
    n = 0
    while sum(len(s) + 1 for s in segs) < 900:
        n += 1
        segs += [f"LIN+{n}++40{n:011d}:SRS", f"QTY+21:{n * 4}", f"PRI+AAA:{n * 7}.50"]
    segs += ["UNS+S", f"CNT+2:{n}", f"UNT+{len(segs) - 1 + 3}+1", "UNZ+1+REF0000123"]
    return "UNA:+.? '" + "'".join(segs) + "'\n"


def main():
    out = sys.argv[1]
    files = {
        "body.xml": small_order(),
        "order10k.xml": order_10k("123456789"),
        "order10k-other.xml": order_10k("987654321"),
        "orders.edi": orders_edi("4000001000002"),
        "orders-other.edi": orders_edi("4000001000019"),
    }
    for name, text in files.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
