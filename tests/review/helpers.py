"""What the review tests share: a finished run's class names, image paths and review rows."""

NAMES = ['cat', 'dog', 'fox']
PATHS = ['a.jpg', 'b.jpg', 'c.jpg']


def review_row(image, cls, suggestion, replacement=''):
    return {
        'image': image,
        'class': cls,
        'suggestion': suggestion,
        'replacement': replacement,
        'score': 0.7,
        'given': 'cat',
    }


ROWS = [
    review_row('a.jpg', 1, 'add'),
    review_row('b.jpg', 0, 'replace', 2),
    review_row('c.jpg', 2, 'add'),
    review_row('c.jpg', 1, 'remove'),
]
