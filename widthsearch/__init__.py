"""widthsearch: channel-width search for timm CNNs at initialization."""

__version__ = "0.1.0"
