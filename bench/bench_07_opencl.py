"""07-opencl: NumPy versus PyOpenCL (whatever device `get_context()` picks) for the module's primitives.

For an elementwise map (2x + y), a reduction (sum of squares), a scan (cumulative sum) and a matrix
product (naive and tiled kernels of notebook 3), at several sizes: NumPy on the host, the OpenCL
kernel on data already on the device ("device only", the result stays there), and the same with the
copies in and out ("with copies"). Every OpenCL result is checked against NumPy (float32 tolerances).
"""

from __future__ import annotations

import time

import numpy as np

from scalelab.bench import Benchmark, time_it

VECTOR_SIZES = (100_000, 1_000_000, 10_000_000)
MATRIX_SIZES = (256, 512, 768)
REPEAT = 3
WARMUP = 1
TILE = 16
SECTION = "07-opencl: NumPy vs OpenCL (elementwise, reduction, scan, matmul)"

MATMUL_SOURCE = """
__kernel void matmul_naive(__global const float *a, __global const float *b, __global float *c,
                           const int n, const int k, const int m)
{
    int col = get_global_id(0), row = get_global_id(1);
    if (row < n && col < m) {
        float sum = 0.0f;
        for (int j = 0; j < k; j++) sum += a[row * k + j] * b[j * m + col];
        c[row * m + col] = sum;
    }
}

__kernel void matmul_tiled(__global const float *a, __global const float *b, __global float *c,
                           const int n, const int k, const int m)
{
    __local float a_tile[TILE][TILE];
    __local float b_tile[TILE][TILE];
    int lx = get_local_id(0), ly = get_local_id(1);
    int col = get_global_id(0), row = get_global_id(1);
    float sum = 0.0f;
    for (int start = 0; start < k; start += TILE) {
        a_tile[ly][lx] = (row < n && start + lx < k) ? a[row * k + start + lx] : 0.0f;
        b_tile[ly][lx] = (start + ly < k && col < m) ? b[(start + ly) * m + col] : 0.0f;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = 0; j < TILE; j++) sum += a_tile[ly][j] * b_tile[j][lx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (row < n && col < m) c[row * m + col] = sum;
}
"""


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _row(operation: str, size: str, numpy_s: float, device_s: float, copies_s: float) -> dict[str, str]:
    return {
        "operation": operation,
        "size": size,
        "NumPy (ms)": _ms(numpy_s),
        "OpenCL device only (ms)": _ms(device_s),
        "OpenCL with copies (ms)": _ms(copies_s),
        "NumPy / device only": f"{numpy_s / device_s:.2f}×",
        "NumPy / with copies": f"{numpy_s / copies_s:.2f}×",
    }


def _vector_rows(queue, n: int) -> list[dict[str, str]]:
    import pyopencl.array as cla
    from pyopencl.elementwise import ElementwiseKernel
    from pyopencl.reduction import ReductionKernel
    from pyopencl.scan import InclusiveScanKernel

    context = queue.context
    lin = ElementwiseKernel(context, "const float *x, const float *y, float *z", "z[i] = 2.0f * x[i] + y[i]")
    squares = ReductionKernel(context, np.float32, neutral="0", reduce_expr="a+b", map_expr="x[i]*x[i]",
                              arguments="const float *x")
    cumsum = InclusiveScanKernel(context, np.float32, "a+b", "0")

    rng = np.random.default_rng(n)
    x, y = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    x_dev, y_dev, z_dev = cla.to_device(queue, x), cla.to_device(queue, y), cla.empty(queue, n, np.float32)

    def lin_device():
        lin(x_dev, y_dev, z_dev)
        queue.finish()

    def lin_copies():
        xd, yd = cla.to_device(queue, x), cla.to_device(queue, y)
        zd = cla.empty_like(xd)
        lin(xd, yd, zd)
        return zd.get()

    def squares_device():
        result = squares(x_dev)
        queue.finish()
        return result

    def squares_copies():
        return float(squares(cla.to_device(queue, x)).get())

    def scan_device():
        cumsum(x_dev, output_ary=z_dev)
        queue.finish()

    def scan_copies():
        xd = cla.to_device(queue, x)
        return cumsum(xd).get()

    rows = []
    numpy_lin = time_it(lambda: 2 * x + y, REPEAT, WARMUP)
    copies = time_it(lin_copies, REPEAT, WARMUP)
    if not np.allclose(copies.result, 2 * x.astype(np.float64) + y, rtol=1e-5, atol=1e-5):
        raise RuntimeError("elementwise result differs from NumPy")
    rows.append(_row("elementwise 2x + y", f"{n:,}", numpy_lin.median, time_it(lin_device, REPEAT, WARMUP).median,
                     copies.median))

    numpy_sq = time_it(lambda: float(np.dot(x, x)), REPEAT, WARMUP)
    copies = time_it(squares_copies, REPEAT, WARMUP)
    if not np.isclose(copies.result, np.dot(x.astype(np.float64), x), rtol=1e-4):
        raise RuntimeError("reduction result differs from NumPy")
    rows.append(_row("reduction sum(x²)", f"{n:,}", numpy_sq.median, time_it(squares_device, REPEAT, WARMUP).median,
                     copies.median))

    numpy_scan = time_it(lambda: np.cumsum(x), REPEAT, WARMUP)
    copies = time_it(scan_copies, REPEAT, WARMUP)
    if not np.allclose(copies.result, np.cumsum(x.astype(np.float64)), rtol=1e-4, atol=1e-3):
        raise RuntimeError("scan result differs from NumPy")
    rows.append(_row("scan cumsum", f"{n:,}", numpy_scan.median, time_it(scan_device, REPEAT, WARMUP).median,
                     copies.median))
    return rows


def _matrix_rows(queue, program, n: int) -> list[dict[str, str]]:
    import pyopencl as cl

    context = queue.context
    rng = np.random.default_rng(n)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    mf = cl.mem_flags
    a_buf = cl.Buffer(context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a)
    b_buf = cl.Buffer(context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b)
    c_buf = cl.Buffer(context, mf.WRITE_ONLY, size=a.nbytes)
    size = (_round_up(n, TILE), _round_up(n, TILE))
    args = (np.int32(n), np.int32(n), np.int32(n))
    numpy_mm = time_it(lambda: a @ b, REPEAT, WARMUP)
    expected = a.astype(np.float64) @ b
    rows = []
    for name in ("matmul_naive", "matmul_tiled"):
        kernel = cl.Kernel(program, name)

        def device(kernel=kernel):
            kernel(queue, size, (TILE, TILE), a_buf, b_buf, c_buf, *args)
            queue.finish()

        def copies(kernel=kernel):
            ab = cl.Buffer(context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=a)
            bb = cl.Buffer(context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=b)
            cb = cl.Buffer(context, mf.WRITE_ONLY, size=a.nbytes)
            kernel(queue, size, (TILE, TILE), ab, bb, cb, *args)
            c = np.empty_like(a)
            cl.enqueue_copy(queue, c, cb)
            return c

        with_copies = time_it(copies, REPEAT, WARMUP)
        if not np.allclose(with_copies.result, expected, rtol=1e-4, atol=1e-3):
            raise RuntimeError(f"{name} differs from NumPy")
        rows.append(_row(name.replace("_", " "), f"{n}×{n}", numpy_mm.median, time_it(device, REPEAT, WARMUP).median,
                         with_copies.median))
    return rows


def main() -> None:
    import pyopencl as cl

    from scalelab.opencl import _device_info, get_context

    benchmark = Benchmark(__file__)
    context = get_context()
    queue = cl.CommandQueue(context)
    device = _device_info(context.devices[0]).describe()
    start = time.perf_counter()
    program = cl.Program(context, MATMUL_SOURCE).build(options=[f"-DTILE={TILE}"])
    rows = []
    for n in VECTOR_SIZES:
        rows += _vector_rows(queue, n)
        print(rows[-3:], flush=True)
    for n in MATRIX_SIZES:
        rows += _matrix_rows(queue, program, n)
        print(rows[-2:], flush=True)
    elapsed = time.perf_counter() - start
    notes = (
        f"OpenCL device: {device}. float32 throughout. Medians of {REPEAT} runs after {WARMUP} warm-up run "
        "(wall clock, `queue.finish()` inside the timed call). 'Device only': inputs already on the device, "
        "result left there; 'with copies': inputs copied in and the result copied back inside the timed call. "
        "Ratios above 1× mean OpenCL is faster than NumPy. Kernels: `ElementwiseKernel`, `ReductionKernel`, "
        "`InclusiveScanKernel`, and the naive and tiled (16×16 local-memory tiles) matrix products of "
        f"`07-local-memory`. NumPy {np.__version__}; every OpenCL result checked against NumPy. "
        f"Total {elapsed:.0f} s. {benchmark.load_note()}. The machine is shared, so figures can vary between runs "
        "by tens of percent."
    )
    benchmark.record(SECTION, rows, notes)


if __name__ == "__main__":
    main()
