namespace Streams.SegmentStore.Load;

/// <summary>
/// One segment's measured load: event and byte rates as exponentially weighted moving averages over a few windows
/// (2, 5, 10 and 20 minutes by default), and a 32-bucket histogram of bytes by routing key.
/// <para>
/// Why it is built this way. Appends only count (<see cref="Record"/>: two or three interlocked adds, no math); the
/// container's one load timer calls <see cref="Tick"/> for every segment, idle ones included, so a segment that goes
/// quiet decays instead of keeping its last rate until its next append (Pravega updates only on appends). A tick
/// folds the counts since the previous tick in with α = 1 − e^(−Δt/window): with a fixed Δt this is Pravega's α,
/// and a late tick weighs its longer interval correctly. The first sample is folded in like any other (rate starts at
/// 0, or at a seed): Pravega's "the first sample replaces the rate" made a new segment report its first burst as its
/// rate, a suspected cause of oscillating scales (pravega#3973).
/// </para>
/// <para>
/// Threads: <see cref="Record"/> from any append; <see cref="Tick"/>, <see cref="Seed"/>, <see cref="Restore"/> and
/// <see cref="Capture"/> under the meter's own lock (a leaf).
/// </para>
/// </summary>
public sealed class SegmentLoadMeter
{
    /// <summary>Most windows a meter keeps (the contract's four, with room to spare).</summary>
    public const int MaxWindows = 8;

    /// <summary>Routing-key buckets: the segment's key range in 32 equal parts (finer than any split a policy makes).</summary>
    public const int KeyBuckets = 32;

    /// <summary>A key sample is 1 + the key's position in the range scaled to 2^32; its top 5 bits pick the bucket.</summary>
    private const int BucketShift = 27;

    private readonly object _sync = new();
    private readonly double[] _eventRates = new double[MaxWindows];
    private readonly double[] _byteRates = new double[MaxWindows];
    private readonly double[] _keyBytes = new double[KeyBuckets];
    private readonly long[] _pendingKeyBytes = new long[KeyBuckets];
    private long _pendingEvents;
    private long _pendingBytes;
    private int _windows;
    private long _ageMs;

    /// <summary>Counts an accepted append block. Cheap: it never takes a lock and does no floating-point math.</summary>
    /// <param name="events">Events in the block.</param>
    /// <param name="bytes">The block's bytes.</param>
    /// <param name="keySample">The block's routing-key sample (AppendBlock.key_sample): 0 for none.</param>
    public void Record(int events, long bytes, ulong keySample)
    {
        Interlocked.Add(ref _pendingEvents, events);
        Interlocked.Add(ref _pendingBytes, bytes);
        if (keySample != 0)
        {
            Interlocked.Add(ref _pendingKeyBytes[BucketOf(keySample)], bytes);
        }
    }

    /// <summary>The histogram bucket of a non-zero key sample.</summary>
    public static int BucketOf(ulong keySample) => (int)Math.Min((keySample - 1) >> BucketShift, KeyBuckets - 1);

    /// <summary>
    /// Folds the counts since the previous tick into the averages, <paramref name="elapsedMs"/> after it, for the
    /// windows <paramref name="windowsMs"/> (shortest first). Nothing happens for a non-positive interval.
    /// </summary>
    public void Tick(long elapsedMs, ReadOnlySpan<double> windowsMs)
    {
        if (elapsedMs <= 0)
        {
            return;
        }

        var events = Interlocked.Exchange(ref _pendingEvents, 0);
        var bytes = Interlocked.Exchange(ref _pendingBytes, 0);
        var seconds = elapsedMs / 1000.0;
        lock (_sync)
        {
            _windows = Math.Min(windowsMs.Length, MaxWindows);
            for (var i = 0; i < _windows; i++)
            {
                var alpha = 1 - Math.Exp(-elapsedMs / windowsMs[i]);
                _eventRates[i] += alpha * ((events / seconds) - _eventRates[i]);
                _byteRates[i] += alpha * ((bytes / seconds) - _byteRates[i]);
            }

            // The histogram decays over the longest window: it shows where the recent load is, not all time's.
            var keep = _windows == 0 ? 0 : Math.Exp(-elapsedMs / windowsMs[_windows - 1]);
            for (var b = 0; b < KeyBuckets; b++)
            {
                _keyBytes[b] = (_keyBytes[b] * keep) + Interlocked.Exchange(ref _pendingKeyBytes[b], 0);
            }

            _ageMs += elapsedMs;
        }
    }

    /// <summary>Starts from a predecessor's share of load (a successor's seed): rates and age; the histogram starts empty.</summary>
    public void Seed(ReadOnlySpan<double> eventRates, ReadOnlySpan<double> byteRates, long ageMs)
    {
        lock (_sync)
        {
            _windows = Math.Min(Math.Max(eventRates.Length, byteRates.Length), MaxWindows);
            for (var i = 0; i < MaxWindows; i++)
            {
                _eventRates[i] = i < eventRates.Length ? eventRates[i] : 0;
                _byteRates[i] = i < byteRates.Length ? byteRates[i] : 0;
            }

            _ageMs = Math.Max(0, ageMs);
        }
    }

    /// <summary>Continues from a checkpointed state (recovery).</summary>
    public void Restore(LoadState state)
    {
        lock (_sync)
        {
            Seed(state.EventRates, state.ByteRates, state.AgeMs);
            for (var b = 0; b < KeyBuckets; b++)
            {
                _keyBytes[b] = b < state.KeyBytes.Length ? state.KeyBytes[b] : 0;
            }
        }
    }

    /// <summary>The averages now (for reports and checkpoints); counts since the last tick are not in it.</summary>
    public LoadState Capture()
    {
        lock (_sync)
        {
            return new LoadState(_eventRates.AsSpan(0, _windows).ToArray(), _byteRates.AsSpan(0, _windows).ToArray(), _ageMs, (double[])_keyBytes.Clone());
        }
    }
}

/// <summary>
/// A meter's averages at one moment: rates per window (shortest first), how long they have been measured (a seed's age
/// included), and the decayed bytes per routing-key bucket.
/// </summary>
public sealed record LoadState(double[] EventRates, double[] ByteRates, long AgeMs, double[] KeyBytes)
{
    /// <summary>The key buckets as shares of their sum (empty when nothing was measured).</summary>
    public double[] KeyShares()
    {
        var total = 0.0;
        foreach (var b in KeyBytes)
        {
            total += b;
        }

        if (total <= 0)
        {
            return [];
        }

        var shares = new double[KeyBytes.Length];
        for (var i = 0; i < shares.Length; i++)
        {
            shares[i] = KeyBytes[i] / total;
        }

        return shares;
    }
}
