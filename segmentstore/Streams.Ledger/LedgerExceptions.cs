namespace Streams.Ledger;

/// <summary>A ledger operation failed.</summary>
public class LedgerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The ledger was fenced (taken over by recovery): this writer can add nothing more.</summary>
internal sealed class LedgerFencedException(long ledgerId)
    : LedgerException($"Ledger {ledgerId} was fenced: another owner recovered it, this writer may add nothing more.");

/// <summary>Too few bookies are available for the requested ensemble or quorum.</summary>
public sealed class NotEnoughBookiesException(string message) : LedgerException(message);
