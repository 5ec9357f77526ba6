"""The review page (`mlrelabel.review.page`): rows embedded safely, and in a real browser (Debian's chromium
through Selenium; .ci/run installs both) a smoke run's proposals accepted and rejected by keyboard, kept over
a reload, applied; the file:// page."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from mlrelabel.review import page
from mlrelabel.review.build import page_data
from tests.helpers import ROOT
from tests.review.helpers import NAMES, PATHS, ROWS, review_row

DRIVER = '/usr/bin/chromedriver'


pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp('review') / 'run')
    command = [sys.executable, '-m', 'mlrelabel.main', '--config=mc_dropout:smoke', f'--workdir={workdir}']
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=1200)
    return workdir


@pytest.fixture
def browser():
    webdriver = pytest.importorskip('selenium.webdriver')
    if not (os.path.exists(DRIVER) and (shutil.which('chromium') or shutil.which('chromium-browser'))):
        pytest.skip('chromium and chromium-driver are not installed (.ci/run installs them)')
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--window-size=1400,1000'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _ready(driver, url):
    driver.get(url)
    deadline = time.time() + 30
    while not driver.execute_script('return window.reviewReady === true'):
        assert time.time() < deadline, 'the page did not finish loading'
        time.sleep(0.1)


def _wait(driver, script, expected):
    deadline = time.time() + 15
    while (got := driver.execute_script(script)) != expected:
        assert time.time() < deadline, f'{script}: {got!r}, expected {expected!r}'
        time.sleep(0.1)


def _press(driver, key):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


COUNTS = "return document.getElementById('counts').textContent"


CARDS = "return [...document.querySelectorAll('.card')].slice(0, 2).map(c => [c.dataset.row, c.className])"


def _review(cwd, *args):
    return subprocess.run(
        [sys.executable, '-m', 'mlrelabel.review', *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_accept_reject_reload_apply(smoke_run, browser, tmp_path):
    server = subprocess.Popen(
        [sys.executable, '-m', 'mlrelabel.review', smoke_run, '--port=0'],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        assert url.startswith('http://127.0.0.1:') and '?token=' in url
        _ready(browser, url)
        total = int(browser.execute_script(COUNTS).split('·')[1].split()[0])
        first, second = [int(row) for row, _ in browser.execute_script(CARDS)]
        _press(browser, 'a')
        _wait(browser, COUNTS, f'1 decided · {total - 1} remaining')
        _press(browser, 'r')
        _wait(browser, COUNTS, f'2 decided · {total - 2} remaining')
        browser.refresh()
        _ready(browser, url)
        _wait(browser, COUNTS, f'2 decided · {total - 2} remaining')
        browser.execute_script(
            "const s = document.getElementById('f-show'); s.value = 'done';"
            "s.dispatchEvent(new Event('change'))"
        )
        states = {int(row): cls for row, cls in browser.execute_script(CARDS)}
        assert 'accept' in states[first] and 'reject' in states[second]
        _wait(browser, 'return [...document.images].every(i => i.complete && i.naturalWidth > 0)', True)
        browser.save_screenshot(str(tmp_path / 'review.png'))
        shutil.copy(tmp_path / 'review.png', '/tmp/review_screenshot.png')
    finally:
        server.terminate()
        server.wait(timeout=30)
    lines = [json.loads(x) for x in open(os.path.join(smoke_run, 'review', 'decisions.jsonl'))]
    assert [x['action'] for x in lines] == ['accept', 'reject'] and {'image', 'class', 'kind', 'time'} <= set(
        lines[0]
    )
    out = tmp_path / 'curated.json'
    done = _review(ROOT, smoke_run, '--apply', f'--out={out}')
    assert done.returncode == 0, done.stderr
    run = {
        e['img_path']: e['labels'] for e in json.load(open(os.path.join(smoke_run, 'labels.json')))['data']
    }
    curated = {e['img_path']: e['labels'] for e in json.load(open(out))['data']}
    changed = {p for p in run if sorted(run[p]) != sorted(curated[p])}
    accepted, rejected = lines
    expect = {accepted['image']} if accepted['kind'] != 'add' else set()
    assert changed == expect and rejected['class'] in curated[rejected['image']]


def test_file_page_shows_proposals_and_says_when_storage_is_unavailable(smoke_run, browser):
    done = _review(ROOT, smoke_run, '--no-serve')
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith('file://')
    _ready(browser, url)
    assert browser.execute_script("return document.querySelectorAll('.card img').length") > 0
    _press(browser, 'a')
    _wait(browser, COUNTS.replace('textContent', "textContent.split(' ')[0]"), '1')
    browser.refresh()
    _ready(browser, url)
    _wait(browser, COUNTS.replace('textContent', "textContent.split(' ')[0]"), '1')  # kept in localStorage
    assert browser.execute_script("return document.getElementById('banner').hidden")
    browser.execute_cdp_cmd(
        'Page.addScriptToEvaluateOnNewDocument',
        {
            'source': (
                "Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('denied', 'SecurityError') }})"
            )
        },
    )
    _ready(browser, url)
    banner = browser.execute_script(
        "const b = document.getElementById('banner'); return [b.hidden, b.textContent]"
    )
    assert banner[0] is False and 'storage is unavailable' in banner[1]
    assert browser.execute_script("return document.querySelectorAll('.card').length") > 0


def test_page_embeds_the_rows_safely():
    rows = ROWS + [dict(review_row('a.jpg', 2, 'add'), given='</script><b>')]
    data = page_data(rows, PATHS, [[0, 1], [0], [1, 2]], NAMES, {('a.jpg', 1): [0, 0, 0.5, 0.5]}, 'run<1>')
    assert data['kind'] == [0, 2, 0, 1, 0] and data['rep'] == [-1, 2, -1, -1, -1]
    assert data['box'][0] == [0, 0, 0.5, 0.5] and data['box'][1] is None
    html = page.render(data)
    assert (
        html.count('</script>') == 2 and 'run&lt;1&gt;' in html and 'http' not in html.replace('https://', '')
    )
