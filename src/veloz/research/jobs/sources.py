"""Which bars a job submitted over HTTP may read: the data store (`store:VENUE/SYMBOL/
INTERVAL`) or a file under the data directory, named relative to it or by a path inside
it. Anything else is refused before it is opened, so an API caller cannot make the
engine read an arbitrary file of the server's."""

from dataclasses import dataclass
from pathlib import Path

from veloz.backtest.data import STORE_PREFIX, BarSeries
from veloz.backtest.run import DataRef, read_ref
from veloz.model.errors import CommandRejected


@dataclass(frozen=True)
class DataSources:
    """A `read_source` for `veloz.backtest.run.prepare`, confined to `root`."""

    root: Path  # VELOZ_DATA_DIR

    def __call__(self, ref: DataRef) -> BarSeries:
        return read_ref(self.check(ref))

    def check(self, ref: DataRef) -> DataRef:
        """`ref` with a file's path made absolute inside the root; refused otherwise."""
        if ref.source.startswith(STORE_PREFIX):
            return ref
        root = self.root.resolve()
        # Symbolic links and `..` are resolved first: where the file really is counts.
        path = (root / ref.source).resolve()
        if not path.is_relative_to(root):
            raise CommandRejected(
                f"data source {ref.source!r}: over the API only store:VENUE/SYMBOL/INTERVAL "
                "or a file under the data directory (VELOZ_DATA_DIR) may be read"
            )
        return DataRef(symbol=ref.symbol, source=str(path))
