namespace Streams.Ledger;

/// <summary>
/// An entry's bytes as bookie clients read them: at the moment a client writes its request (<see cref="Use"/>), not
/// when the add is called. That is what lets a <see cref="LedgerWriter"/> send the caller's buffer itself to every
/// bookie of the write set, with no copy per entry, although with Qw &gt; Qa the entry is acknowledged (and the
/// caller may reuse its buffer) before every copy went out.
/// <para>
/// Why it is safe. Every read of the bytes runs under this object's lock, and the writer calls <see cref="ReleaseCallerBuffer"/>
/// (under the same lock) before it tells the caller the entry completed or failed, whenever a send may still read
/// them: from then on readers get a private copy. Sends normally write their requests at once, long before Qa
/// acknowledgements can come back, so the copy is made only for a send that was still queued behind a slow
/// connection when the entry completed.
/// </para>
/// </summary>
public sealed class EntryPayload
{
    private readonly object _lock = new();
    private ReadOnlyMemory<byte> _bytes;
    private int _expected;
    private int _reads;
    private bool _detached;

    /// <summary>A payload whose bytes stay valid as long as anyone may send it (recovery, re-replication).</summary>
    public EntryPayload(ReadOnlyMemory<byte> bytes)
    {
        _bytes = bytes;
    }

    /// <summary>Runs <paramref name="use"/> over the bytes; it must not keep them past its return.</summary>
    public TResult Use<TState, TResult>(TState state, Func<ReadOnlyMemory<byte>, TState, TResult> use)
    {
        lock (_lock)
        {
            _reads++;
            return use(_bytes, state);
        }
    }

    /// <summary>A send that will read the bytes has started (the writer's lock held).</summary>
    internal void ExpectRead()
    {
        lock (_lock)
        {
            _expected++;
        }
    }

    /// <summary>
    /// Called before the caller's buffer may be reused: if a send that is still in flight
    /// (<paramref name="sendsInFlight"/>) may not have read the bytes yet, they are copied for it.
    /// </summary>
    /// <returns>True if the bytes were copied now.</returns>
    internal bool ReleaseCallerBuffer(bool sendsInFlight)
    {
        lock (_lock)
        {
            if (!sendsInFlight || _reads >= _expected || _detached)
            {
                return false;
            }

            _bytes = _bytes.ToArray();
            _detached = true;
            return true;
        }
    }
}
