namespace Streams.Bookie.Storage;

/// <summary>
/// The ledgers deleted on this bookie whose delete record the journal still holds: adds, fences and reads of them
/// answer NO_SUCH_LEDGER. Guarded by the store's lock.
/// <para>
/// Bounded by the journal's retained range. Every record of a deleted ledger lies before its delete record (records
/// are enqueued in arrival order, and requests for the ledger that arrive after its delete are refused), so once
/// garbage collection has moved the journal's head past the delete record nothing of the ledger is left, and the id is
/// forgotten, exactly as a restart would forget it (replay only sees the delete records still in the journal). Ledger
/// ids are never reused, so a forgotten id is only ever named again by a stale request.
/// </para>
/// </summary>
internal sealed class DeletedLedgers
{
    private readonly HashSet<long> _ledgers = [];

    // In journal order; a delete still waiting for journal memory has address -1 and holds back the ones after it.
    private readonly Queue<(long Ledger, PendingRecord? Record, long Address)> _byAddress = new();

    public int Count => _ledgers.Count;

    public bool Contains(long ledger) => _ledgers.Contains(ledger);

    /// <summary>Remembers a delete made now, whose record is <paramref name="record"/>.</summary>
    public void Add(long ledger, PendingRecord record)
    {
        if (_ledgers.Add(ledger))
        {
            _byAddress.Enqueue((ledger, record, -1));
        }
    }

    /// <summary>Remembers a delete found in the journal at <paramref name="address"/> (replay).</summary>
    public void Add(long ledger, long address)
    {
        if (_ledgers.Add(ledger))
        {
            _byAddress.Enqueue((ledger, null, address));
        }
    }

    /// <summary>Forgets the deletes whose records lie before <paramref name="beginAddress"/>.</summary>
    public void Prune(long beginAddress)
    {
        while (_byAddress.TryPeek(out var next))
        {
            var address = next.Record?.Address ?? next.Address;
            if (address < 0 || address >= beginAddress)
            {
                break;
            }

            _byAddress.Dequeue();
            _ledgers.Remove(next.Ledger);
        }
    }
}
