"""Load time of the review page with many proposals, in headless Chromium (BENCHMARKS.md "Review page").

    python benchmarks/review_page_load.py [--rows=50000] [--repeats=3]

Writes a page of `--rows` synthetic proposals (100 classes, 5 per image, one 40 px thumbnail per image) with
`mlrelabel.review.page`, opens it from file:// with Debian's chromium through Selenium, and reports the time from
navigation start until the page has rendered its first cards (`window.reviewReady`), the page's size, and the
time to change the sort order and the class filter over every row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
from PIL import Image

from mlrelabel.review import page
from mlrelabel.review.build import page_data


def synthetic_page(directory: str, rows: int) -> str:
    rng = np.random.default_rng(0)
    names = [f'class_{c:03d}' for c in range(100)]
    images = -(-rows // 5)
    paths = [f'train/{i:07d}.jpg' for i in range(images)]
    lists = [sorted(rng.choice(100, 3, replace=False).tolist()) for _ in range(images)]
    kinds = rng.choice(['add', 'add', 'add', 'remove', 'replace'], rows)
    review = [
        {
            'image': paths[r // 5],
            'class': int(rng.integers(100)),
            'suggestion': kinds[r],
            'replacement': int(rng.integers(100)) if kinds[r] == 'replace' else '',
            'score': float(rng.random()),
            'given': names[lists[r // 5][0]],
        }
        for r in range(rows)
    ]
    boxes = {(r['image'], r['class']): [0.1, 0.2, 0.6, 0.7] for r in review}
    os.makedirs(os.path.join(directory, 'img'))
    thumb = np.asarray(rng.integers(0, 255, (40, 40, 3)), np.uint8)
    for i in range(images):
        Image.fromarray(thumb).save(os.path.join(directory, 'img', f'{i}.png'))
    path = os.path.join(directory, 'index.html')
    page.write(path, page_data(review, paths, lists, names, boxes, 'benchmark'))
    return path


def measure(path: str, repeats: int) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1400,1000'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=options)
    loads, sorts, filters = [], [], []
    try:
        for _ in range(repeats):
            driver.get('file://' + path)
            while not driver.execute_script('return window.reviewReady === true'):
                time.sleep(0.01)
            loads.append(driver.execute_script('return performance.now()') / 1000)
            for element, value, out in (('f-sort', 'score', sorts), ('f-class', '7', filters)):
                out.append(
                    driver.execute_script(
                        'const t = performance.now(); const s = document.getElementById(arguments[0]);'
                        "s.value = arguments[1]; s.dispatchEvent(new Event('change'));"
                        'return (performance.now() - t) / 1000',
                        element,
                        value,
                    )
                )
    finally:
        driver.quit()
    return {'load_s': loads, 'resort_s': sorts, 'filter_s': filters}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--rows', type=int, default=50000)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = synthetic_page(directory, args.rows)
        result = measure(path, args.repeats)
        result.update(
            rows=args.rows,
            page_mb=round(os.path.getsize(path) / 2**20, 2),
            machine=f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs',
            date=time.strftime('%Y-%m-%d'),
        )
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
