"""Bit-level UART line drivers for Amaranth simulations (test helper, not collected)."""

from __future__ import annotations


async def send_bytes(ctx, line, data: bytes, divisor: int, gap_bits: int = 0):
    """Drive ``line`` with 8N1 frames of ``data``, ``divisor`` clocks per bit."""
    for byte in data:
        bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1] * (1 + gap_bits)
        for bit in bits:
            ctx.set(line, bit)
            await ctx.tick().repeat(divisor)


async def receive_bytes(ctx, line, count: int, divisor: int, max_cycles: int) -> bytes:
    """Decode ``count`` 8N1 frames from ``line``; stop after ``max_cycles`` clocks."""
    out = bytearray()
    cycles = 0
    while len(out) < count and cycles < max_cycles:
        await ctx.tick()
        cycles += 1
        if ctx.get(line):
            continue
        await ctx.tick().repeat(divisor // 2)  # middle of the start bit
        cycles += divisor // 2
        assert ctx.get(line) == 0, "start bit did not last half a bit"
        value = 0
        for i in range(8):
            await ctx.tick().repeat(divisor)
            value |= ctx.get(line) << i
        await ctx.tick().repeat(divisor)
        assert ctx.get(line) == 1, "stop bit is 0"
        cycles += 9 * divisor
        out.append(value)
    return bytes(out)
