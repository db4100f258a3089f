"""The poll plan: a device's points compiled into as few Modbus reads as the
device and the protocol allow.

Why: on a 9600-baud RS-485 bus each transaction costs ~40 ms whatever its
size, so reading 40 neighbouring registers in one request instead of 20
requests is what makes a serial bus fast. :func:`build_plan` is a pure
function of the points and the limits; it is computed once at start-up and
the poller then walks ``plan.requests`` every cycle.

Rules
-----
* Points are grouped by kind (holding, input, coil, discrete) and sorted by
  address; requests come out ordered by kind, then address.
* ``merge=True``: a point joins the current request when the gap between
  the request's end and the point (in registers or bits) is ``<= max_gap``
  and the merged span stays ``<= max_registers`` (``max_bits`` for coils
  and discrete inputs). Gap registers are read and ignored.
* ``merge=False``: for devices that reject reads spanning undefined
  registers; only points that touch or overlap (gap 0) share a request.
* Overlapping points (several BIT points of one register, a register read
  both as a word and as bits) always share a request when it fits.
* A point wider than the limit raises :class:`ValueError` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from drivers.codec import BlockDecoder
from drivers.errors import DecodeError
from drivers.types import MAX_READ_BITS, MAX_READ_REGISTERS, PointSpec, RegisterKind, Value

__all__ = ["PollPlan", "ReadRequest", "build_plan", "split_request"]

_KIND_ORDER = (RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL, RegisterKind.DISCRETE)


@dataclass(frozen=True)
class ReadRequest:
    """One Modbus read: ``count`` registers (or bits) of ``kind`` from
    ``address`` (0-based), covering ``points`` (sorted by address).

    The decoder for the response is compiled once, when the request is
    built, so :meth:`decode` costs one pass over the points.
    """

    kind: RegisterKind
    address: int
    count: int
    points: tuple[PointSpec, ...]
    _decoder: BlockDecoder | None = field(
        init=False, repr=False, compare=False, hash=False, default=None
    )

    def __post_init__(self) -> None:
        if not 1 <= self.count:
            raise ValueError(f"request at {self.kind} {self.address}: count must be >= 1")
        for p in self.points:
            if p.kind is not self.kind or not (
                self.address <= p.address and p.address + p.width <= self.end
            ):
                raise ValueError(
                    f"point {p.name!r} ({p.kind} {p.address}, width {p.width}) lies outside "
                    f"request {self.kind} {self.address}..{self.end - 1}"
                )
        if not self.kind.is_bit:
            decoder = BlockDecoder(self.count, [(p, p.address - self.address) for p in self.points])
            object.__setattr__(self, "_decoder", decoder)

    @property
    def end(self) -> int:
        """First address after the request."""
        return self.address + self.count

    def decode(
        self, words_or_bits: Sequence[int] | Sequence[bool]
    ) -> dict[str, Value | DecodeError]:
        """``{point name: value or DecodeError}`` from the response.

        Registers: exactly ``count`` words. Bits: at least ``count`` (pymodbus
        pads bit responses to a multiple of 8). A point that fails to decode
        gets its :class:`DecodeError`; the others are unaffected.
        """
        if self._decoder is not None:
            return self._decoder.decode(words_or_bits)
        if len(words_or_bits) < self.count:
            err = DecodeError(
                f"{self.kind} response at {self.address} has {len(words_or_bits)} bits, "
                f"expected {self.count}"
            )
            return {p.name: err for p in self.points}
        base = self.address
        return {p.name: bool(words_or_bits[p.address - base]) for p in self.points}


@dataclass(frozen=True)
class PollPlan:
    """Every read needed to poll one device, in kind-then-address order."""

    requests: tuple[ReadRequest, ...]

    @property
    def points(self) -> tuple[PointSpec, ...]:
        return tuple(p for r in self.requests for p in r.points)

    @property
    def registers_read(self) -> int:
        """Registers/bits transferred per full poll (gap registers included)."""
        return sum(r.count for r in self.requests)

    def decode(
        self, req: ReadRequest, words_or_bits: Sequence[int] | Sequence[bool]
    ) -> dict[str, Value | DecodeError]:
        """Decode the response to ``req`` (see :meth:`ReadRequest.decode`)."""
        return req.decode(words_or_bits)


def build_plan(
    points: Iterable[PointSpec],
    *,
    merge: bool = True,
    max_gap: int = 10,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> PollPlan:
    """Compile ``points`` into a :class:`PollPlan` (pure function).

    Raises :class:`ValueError` for duplicate point names, limits outside the
    protocol's, a negative gap, or a point wider than the limit of its kind.
    """
    if not 1 <= max_registers <= MAX_READ_REGISTERS:
        raise ValueError(f"max_registers must be 1..{MAX_READ_REGISTERS}, got {max_registers}")
    if not 1 <= max_bits <= MAX_READ_BITS:
        raise ValueError(f"max_bits must be 1..{MAX_READ_BITS}, got {max_bits}")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    gap_allowed = max_gap if merge else 0

    by_kind: dict[RegisterKind, list[PointSpec]] = {}
    names: set[str] = set()
    for p in points:
        if p.name in names:
            raise ValueError(f"point name {p.name!r} appears twice; names must be unique")
        names.add(p.name)
        by_kind.setdefault(p.kind, []).append(p)

    requests: list[ReadRequest] = []
    for kind in _KIND_ORDER:
        group = by_kind.get(kind)
        if not group:
            continue
        limit = max_bits if kind.is_bit else max_registers
        # Wider points first at equal address so the run's end is known early.
        group.sort(key=lambda p: (p.address, -p.width, p.name))
        start = end = -1
        members: list[PointSpec] = []
        for p in group:
            if p.width > limit:
                raise ValueError(
                    f"point {p.name!r} ({kind} {p.address}) spans {p.width} "
                    f"{'bits' if kind.is_bit else 'registers'}, more than one read allows "
                    f"({limit}); shorten it or split it into several points"
                )
            p_end = p.address + p.width
            if members and p.address - end <= gap_allowed and max(end, p_end) - start <= limit:
                members.append(p)
                end = max(end, p_end)
                continue
            if members:
                requests.append(ReadRequest(kind, start, end - start, tuple(members)))
            start, end, members = p.address, p_end, [p]
        if members:
            requests.append(ReadRequest(kind, start, end - start, tuple(members)))
    return PollPlan(tuple(requests))


def _clusters(points: Sequence[PointSpec]) -> list[list[PointSpec]]:
    """``points`` (sorted by address) in runs of overlapping points: the
    smallest pieces a read can be cut into (the BIT points of one register,
    a register read both as a word and as bits, stay together)."""
    runs: list[list[PointSpec]] = []
    end = -1
    for p in points:
        if runs and p.address < end:
            runs[-1].append(p)
        else:
            runs.append([p])
        end = max(end, p.address + p.width)
    return runs


def _covering(kind: RegisterKind, points: Sequence[PointSpec]) -> ReadRequest:
    start = min(p.address for p in points)
    end = max(p.address + p.width for p in points)
    return ReadRequest(kind, start, end - start, tuple(points))


def split_request(req: ReadRequest) -> tuple[ReadRequest, ReadRequest] | None:
    """``req`` cut in two reads covering the first and the second half of
    its points (gap registers between the halves are no longer read), or
    None when it cannot be cut: its points all overlap (a single point, or
    the bits of one register).

    For a device that refuses a merged read because one of its points lies
    at an address the device lacks (exception 2) or beyond a range it
    accepts (3): cutting in halves, down to single points, finds the refused
    points in a few reads and keeps the others readable.
    """
    runs = _clusters(req.points)
    if len(runs) < 2:
        return None
    half = len(runs) // 2
    first = [p for run in runs[:half] for p in run]
    second = [p for run in runs[half:] for p in run]
    return _covering(req.kind, first), _covering(req.kind, second)
