"""Collectives and HBM traffic of compiled HLO modules (jaxgreen._src.hlo.traffic)."""

from __future__ import annotations

import pytest

from jaxgreen._src.hlo import traffic
from jaxgreen._src.hlo.ir import group_size
from jaxgreen._src.hlo.traffic import collective_bytes, hlo_traffic

S = 1024  # operand bytes on one device


@pytest.mark.parametrize("kind, n, result, sent", [
    ("all-reduce", 4, S, 2 * 3 / 4 * S),  # reduce-scatter + all-gather: 2(n-1)/n S
    ("all-gather", 4, 4 * S, 3 * S),  # n S out; (n-1) S sent
    ("reduce-scatter", 4, S / 4, 3 / 4 * S),  # S/n out; (n-1)/n S sent
    ("all-to-all", 4, S, 3 / 4 * S),  # keeps 1/n, sends the rest
    ("collective-permute", 4, S, S),  # the whole buffer to one peer
    ("collective-broadcast", 4, S, S),
    ("all-reduce", 1, S, 0),  # a group of one sends nothing
    ("all-gather", 2, 2 * S, S),
])
def test_collective_byte_formulas(kind, n, result, sent):
  assert collective_bytes(kind, S, n) == (pytest.approx(result), pytest.approx(sent))


def test_collective_bytes_bad_input():
  with pytest.raises(ValueError, match="kind='psum'"):
    collective_bytes("psum", S, 2)
  with pytest.raises(ValueError, match="group"):
    collective_bytes("all-reduce", S, 0)


@pytest.mark.parametrize("text, n", [
    ("{{0,1},{2,3}}", 2),
    ("{{0,1,2,3}}", 4),
    ("[2,4]<=[8]", 4),  # iota: 2 groups of 4
    ("[4,2]<=[2,4]T(1,0)", 2),
    ("mesh['x'=2,'y'=4] {'y'}", 4),
    ("mesh['axis_0'=2,'axis_1'=2] {'axis_0','axis_1'}", 4),  # 2 * 2
    ("{}", 8),  # empty: every device
    (None, 8),
])
def test_group_size(text, n):
  assert group_size(text, 8) == n


# f32[8,16] is 8 * 16 * 4 = 512 bytes. A while loop of 3 trips all-reduces it over 4
# devices; then an async all-gather over pairs, an async-wrapped reduce-scatter over 4,
# and a collective-permute.
HLO = """HloModule m, num_partitions=4

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%body (p: (s32[], f32[8,16])) -> (s32[], f32[8,16]) {
  %p = (s32[], f32[8,16]) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %x = f32[8,16] get-tuple-element(%p), index=1
  %ar = f32[8,16] all-reduce(%x), replica_groups={{0,1,2,3}}, to_apply=%add
  %one = s32[] constant(1)
  %j = s32[] add(%i, %one)
  ROOT %t = (s32[], f32[8,16]) tuple(%j, %ar)
}

%cond (p: (s32[], f32[8,16])) -> pred[] {
  %p = (s32[], f32[8,16]) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %n = s32[] constant(3)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%rs_comp (x: f32[8,16]) -> f32[8,4] {
  %x = f32[8,16] parameter(0)
  ROOT %rs = f32[8,4] reduce-scatter(%x), replica_groups=[1,4]<=[4], dimensions={1}, to_apply=%add
}

ENTRY %main (x: f32[8,16]) -> (f32[8,32], f32[8,4], f32[8,16]) {
  %x = f32[8,16] parameter(0)
  %zero = s32[] constant(0)
  %t = (s32[], f32[8,16]) tuple(%zero, %x)
  %w = (s32[], f32[8,16]) while(%t), condition=%cond, body=%body, TRIPS
  %y = f32[8,16] get-tuple-element(%w), index=1
  %ags = (f32[8,16], f32[8,32]) all-gather-start(%y), replica_groups={{0,1},{2,3}}, dimensions={1}
  %agd = f32[8,32] all-gather-done(%ags)
  %as = ((f32[8,16]), f32[8,4]) async-start(%y), calls=%rs_comp
  %ad = f32[8,4] async-done(%as)
  %cp = f32[8,16] collective-permute(%y), source_target_pairs={{0,1},{1,0}}
  ROOT %out = (f32[8,32], f32[8,4], f32[8,16]) tuple(%agd, %ad, %cp)
}
""".replace("TRIPS", 'backend_config={"known_trip_count":{"n":"3"}}')


def test_hlo_traffic_collectives_loops_and_async():
  t = hlo_traffic(HLO)
  assert t.devices == 4  # num_partitions
  assert list(t.collectives) == ["all-reduce", "all-gather", "reduce-scatter",
                                 "collective-permute"]
  ar = t.collectives["all-reduce"]
  assert ar.count == 3  # once per trip
  assert ar.operand_bytes == 3 * 512
  assert ar.sent_bytes == pytest.approx(3 * 2 * 3 / 4 * 512)  # trips * 2(n-1)/n * S
  ag = t.collectives["all-gather"]  # -start counted, -done not
  assert (ag.count, ag.operand_bytes, ag.result_bytes, ag.sent_bytes) == (1, 512, 1024, 512)
  rs = t.collectives["reduce-scatter"]  # inside async-start
  assert (rs.count, rs.result_bytes) == (1, 512 / 4)
  assert rs.sent_bytes == pytest.approx(3 / 4 * 512)
  assert t.collectives["collective-permute"].sent_bytes == 512
  # HBM traffic (operands + results of top-level instructions, loops x trips):
  # body 3 x (all-reduce 512 + 512, s32 add 4 + 4 + 4), condition 4 x (4 + 4 + 1),
  # all-gather 512 + 1024, reduce-scatter 512 + 128, collective-permute 512 + 512.
  assert t.hbm_bytes == 3 * (1024 + 12) + 4 * 9 + 1536 + 640 + 1024
  assert t.unknown_loops == ()


def test_hlo_traffic_unknown_trip_count():
  text = HLO.replace(', backend_config={"known_trip_count":{"n":"3"}}', "").replace(
      "%n = s32[] constant(3)", "%n = s32[] get-tuple-element(%p), index=0")
  t = hlo_traffic(text)
  assert t.collectives["all-reduce"].count == 1  # counted once, and said so
  assert t.unknown_loops == ("w",)


def test_hlo_traffic_bad_input():
  with pytest.raises(ValueError, match="compiled.as_text"):
    hlo_traffic("not hlo")


def test_program_devices():
  assert traffic.program_devices("HloModule m, num_partitions=16, replica_count=2\n") == 32
  assert traffic.program_devices("HloModule m\n") == 1
  assert traffic.program_devices("") == 1


@pytest.mark.parametrize("dtype, expected", [
    ("bf16", "bf16"), ("f32", "fp32"), ("f64", "fp64"), ("f8e4m3fn", "fp8"),
])
def test_matmul_dtype(dtype, expected):
  text = f"""
HloModule m

ENTRY %main (a: {dtype}[4,8], b: {dtype}[8,2]) -> {dtype}[4,2] {{
  %a = {dtype}[4,8]{{1,0}} parameter(0)
  %b = {dtype}[8,2]{{1,0}} parameter(1)
  ROOT %d = {dtype}[4,2]{{1,0}} dot(%a, %b), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
}}
"""
  assert traffic.matmul_dtype(text) == expected


SLICES = """HloModule s, num_partitions=1

%fused (p0: f32[80,1024], p1: s32[]) -> f32[1,1024] {
  %p0 = f32[80,1024] parameter(0)
  %p1 = s32[] parameter(1)
  %z = s32[] constant(0)
  ROOT %ds = f32[1,1024] dynamic-slice(%p0, %p1, %z), dynamic_slice_sizes={1,1024}
}

%fused_dus (q0: f32[80,1024], q1: f32[1,1024], q2: s32[]) -> f32[80,1024] {
  %q0 = f32[80,1024] parameter(0)
  %q1 = f32[1,1024] parameter(1)
  %q2 = s32[] parameter(2)
  %z = s32[] constant(0)
  %e = f32[1,1024] exponential(%q1)
  ROOT %dus = f32[80,1024] dynamic-update-slice(%q0, %e, %q2, %z)
}

ENTRY %main (a: f32[80,1024], i: s32[]) -> f32[80,1024] {
  %a = f32[80,1024] parameter(0)
  %i = s32[] parameter(1)
  %f = f32[1,1024] fusion(%a, %i), kind=kLoop, calls=%fused
  %g = f32[80,1024] fusion(%a, %f, %i), kind=kLoop, calls=%fused_dus
  ROOT %n = f32[80,1024] negate(%g)
}
"""


def test_hlo_traffic_slices_read_only_the_slice():
  row, stack = 1024 * 4, 80 * 1024 * 4  # one f32 row; the stacked (80, 1024) buffer
  t = hlo_traffic(SLICES)
  assert t.collectives == {} and t.devices == 1
  # %f: the row read + the index (4 B) + the row written; %g: in place, the row read,
  # the index, the row written; negate: the whole stack read and written.
  assert t.hbm_bytes == (row + 4 + row) + (row + 4 + row) + 2 * stack
