using System.Runtime.CompilerServices;

namespace Streams.SegmentStore.Tests;

/// <summary>
/// A log that goes silent once <see cref="Silence"/> is called: appends and its close never answer, as a ledger's do
/// when its bookies fenced it and the metadata session is gone (a frozen segment store, woken). Until then it is an
/// <see cref="InMemoryDurableDataLog"/>.
/// </summary>
internal sealed class SilentDurableDataLog(InMemoryDurableDataLog inner) : IDurableDataLog
{
    private readonly TaskCompletionSource<LogAddress> _never = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _silent;

    public SilentDurableDataLog()
        : this(new InMemoryDurableDataLog())
    {
    }

    public InMemoryDurableDataLog Inner => inner;

    public int MaxRecordSize => inner.MaxRecordSize;

    public long Epoch => inner.Epoch;

    /// <summary>From now on, appends and the close wait forever.</summary>
    public void Silence() => _silent = true;

    public ValueTask OpenAsync(CancellationToken cancellationToken = default) => inner.OpenAsync(cancellationToken);

    public ValueTask CheckOwnershipAsync(CancellationToken cancellationToken = default) => inner.CheckOwnershipAsync(cancellationToken);

    public ValueTask<LogAddress> AppendAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken = default) =>
        _silent ? new ValueTask<LogAddress>(_never.Task) : inner.AppendAsync(record, cancellationToken);

    public async IAsyncEnumerable<LogRecord> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var record in inner.ReadAllAsync(cancellationToken))
        {
            yield return record;
        }
    }

    public ValueTask<LogRecord> ReadAsync(LogAddress address, CancellationToken cancellationToken = default) => inner.ReadAsync(address, cancellationToken);

    public ValueTask TruncateAsync(LogAddress upTo, CancellationToken cancellationToken = default) => inner.TruncateAsync(upTo, cancellationToken);

    public ValueTask DisposeAsync()
    {
        return _silent ? new ValueTask(_never.Task) : inner.DisposeAsync();
    }
}
