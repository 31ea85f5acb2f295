using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Connections;

namespace Streams.Common.Server.Hosting;

/// <summary>
/// A memory pool of 64 KiB blocks on the pinned object heap, for Kestrel's sockets and pipes.
/// Kestrel's default pool hands out 4 KiB blocks: every socket read then fills at most 4 KiB and a 1 MiB
/// block of events arrives in 256 pieces, which halved data-plane throughput in our measurements
/// (docs/wire-protocol.md). Retained memory is bounded: blocks beyond <see cref="MaxRetainedBlocks"/>
/// go back to the GC when returned.
/// </summary>
internal sealed class PinnedBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 64 * 1024;

    private readonly ConcurrentQueue<Block> _blocks = new();
    private int _retained;
    private bool _disposed;

    public PinnedBlockMemoryPool(int maxRetainedBlocks = 4096)
    {
        MaxRetainedBlocks = maxRetainedBlocks;
    }

    /// <summary>Blocks kept for reuse at most (4096 blocks = 256 MiB).</summary>
    public int MaxRetainedBlocks { get; }

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > BlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize, $"This pool's blocks are {BlockSize} bytes.");
        }

        if (_blocks.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _retained);
            return block;
        }

        return new Block(this);
    }

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _blocks.Clear();
    }

    private void Return(Block block)
    {
        if (_disposed || Interlocked.Increment(ref _retained) > MaxRetainedBlocks)
        {
            Interlocked.Decrement(ref _retained);
            return;
        }

        _blocks.Enqueue(block);
    }

    private sealed class Block : IMemoryOwner<byte>
    {
        private readonly PinnedBlockMemoryPool _pool;

        public Block(PinnedBlockMemoryPool pool)
        {
            _pool = pool;
            Memory = MemoryMarshal.CreateFromPinnedArray(GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true), 0, BlockSize);
        }

        public Memory<byte> Memory { get; }

        public void Dispose() => _pool.Return(this);
    }
}

/// <summary>Gives Kestrel <see cref="PinnedBlockMemoryPool"/>s instead of its 4 KiB-block default.</summary>
internal sealed class PinnedBlockMemoryPoolFactory : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new PinnedBlockMemoryPool();
}
