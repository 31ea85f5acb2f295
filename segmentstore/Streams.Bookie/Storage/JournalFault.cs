namespace Streams.Bookie.Storage;

/// <summary>
/// The first I/O error any of the journal's devices reported. FASTER does not always pass errors on: it ignores a
/// failed write of its commit metadata (and then deletes journal files the new metadata was to make unreachable), and
/// its commit can otherwise complete past a failed range. So the journal records every error where it happens and,
/// once one happened, acknowledges nothing more and deletes no file: after an EIO the disk's state is unknown.
/// </summary>
internal sealed class JournalFault
{
    private Exception? _error;

    public Exception? Error => Volatile.Read(ref _error);

    public void Set(Exception error) => Interlocked.CompareExchange(ref _error, error, null);

    /// <summary>Throws <see cref="JournalFailedException"/> if an error was recorded.</summary>
    public void ThrowIfSet(string directory)
    {
        if (Error is { } error)
        {
            throw new JournalFailedException($"The journal in {directory} failed: {error.Message}", error);
        }
    }
}
