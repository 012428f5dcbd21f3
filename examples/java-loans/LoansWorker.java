import dev.bridge.examples.loans.Installment;
import dev.bridge.examples.loans.LoanQuote;
import dev.bridge.examples.loans.LoanRequest;
import dev.bridge.examples.loans.LoansBridge;
import dev.bridge.examples.loans.LoansService;
import dev.bridge.runtime.BridgeException;
import dev.bridge.runtime.CallContext;
import dev.bridge.runtime.CommandLine;
import dev.bridge.runtime.ReplyStream;
import dev.bridge.runtime.Worker;
import dev.bridge.v1.Code;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Currency;
import java.util.Map;

/**
 * Fixed-rate loan arithmetic with exact decimals: every amount is rounded to the currency's minor
 * unit (half-even, as banks do), and the last installment absorbs the rounding so the schedule
 * ends at exactly zero.
 */
public final class LoansWorker implements LoansService {
    private static final MathContext PRECISE = MathContext.DECIMAL128;
    private static final BigDecimal HUNDRED = BigDecimal.valueOf(100);
    private static final BigDecimal TWELVE = BigDecimal.valueOf(12);
    private static final int MAX_MONTHS = 1200;

    /** A validated request: the arithmetic below never sees bad input. */
    private record Loan(BigDecimal principal, BigDecimal monthlyRate, int months, Currency currency) {
        BigDecimal round(BigDecimal amount) {
            return amount.setScale(currency.getDefaultFractionDigits(), RoundingMode.HALF_EVEN);
        }

        BigDecimal payment() {
            if (monthlyRate.signum() == 0) {
                return round(principal.divide(BigDecimal.valueOf(months), PRECISE));
            }
            BigDecimal growth = BigDecimal.ONE.add(monthlyRate).pow(months, PRECISE);
            return round(principal.multiply(monthlyRate).multiply(growth)
                    .divide(growth.subtract(BigDecimal.ONE), PRECISE));
        }
    }

    private static Loan parse(LoanRequest request) {
        BigDecimal principal = decimal("principal", request.getPrincipal());
        BigDecimal rate = decimal("annual_rate_percent", request.getAnnualRatePercent());
        if (principal.signum() <= 0) {
            throw invalid("principal must be positive, got " + request.getPrincipal(), "principal");
        }
        if (rate.signum() < 0 || rate.compareTo(HUNDRED) > 0) {
            throw invalid("annual_rate_percent must be within 0..100, got " + request.getAnnualRatePercent(),
                    "annual_rate_percent");
        }
        if (request.getMonths() < 1 || request.getMonths() > MAX_MONTHS) {
            throw invalid("months must be within 1.." + MAX_MONTHS + ", got " + request.getMonths(), "months");
        }
        Currency currency;
        try {
            currency = Currency.getInstance(request.getCurrency());
        } catch (IllegalArgumentException e) {
            throw invalid("unknown ISO 4217 currency '" + request.getCurrency() + "'", "currency");
        }
        BigDecimal monthlyRate = rate.divide(HUNDRED, PRECISE).divide(TWELVE, PRECISE);
        return new Loan(principal, monthlyRate, request.getMonths(), currency);
    }

    private static BigDecimal decimal(String field, String text) {
        try {
            return new BigDecimal(text.strip());
        } catch (NumberFormatException e) {
            throw invalid(field + " is not a decimal number: '" + text + "'", field);
        }
    }

    private static BridgeException invalid(String message, String field) {
        return new BridgeException(Code.INVALID_ARGUMENT, message, Map.of("field", field), null);
    }

    /** Walks the schedule, handing each installment to {@code row}; returns the total interest. */
    private static BigDecimal amortize(Loan loan, java.util.function.Consumer<Installment> row) {
        BigDecimal payment = loan.payment();
        BigDecimal balance = loan.round(loan.principal());
        BigDecimal totalInterest = BigDecimal.ZERO;
        for (int n = 1; n <= loan.months(); n++) {
            BigDecimal interest = loan.round(balance.multiply(loan.monthlyRate(), PRECISE));
            BigDecimal principalPart = n == loan.months() ? balance : payment.subtract(interest).min(balance);
            BigDecimal thisPayment = principalPart.add(interest);
            balance = balance.subtract(principalPart);
            totalInterest = totalInterest.add(interest);
            row.accept(Installment.newBuilder()
                    .setNumber(n)
                    .setPayment(thisPayment.toPlainString())
                    .setPrincipal(principalPart.toPlainString())
                    .setInterest(interest.toPlainString())
                    .setBalance(balance.toPlainString())
                    .build());
        }
        return totalInterest;
    }

    @Override
    public LoanQuote quote(LoanRequest request, CallContext context) {
        Loan loan = parse(request);
        Installment[] last = new Installment[1];
        BigDecimal interest = amortize(loan, row -> last[0] = row);
        BigDecimal principal = loan.round(loan.principal());
        return LoanQuote.newBuilder()
                .setMonthlyPayment(loan.payment().toPlainString())
                .setTotalInterest(interest.toPlainString())
                .setTotalPaid(principal.add(interest).toPlainString())
                .setCurrency(loan.currency().getCurrencyCode())
                .setMonths(loan.months())
                .setLastPayment(last[0].getPayment())
                .build();
    }

    @Override
    public void schedule(LoanRequest request, ReplyStream<Installment> replies, CallContext context) {
        Loan loan = parse(request);
        amortize(loan, row -> {
            replies.send(row);
            context.progress(row.getNumber(), loan.months());
        });
    }

    /**
     * The worker command line of every bridge runtime ({@code --servers}, {@code --concurrency},
     * {@code --log-level}, {@code --help}, {@code --version}, the {@code BRIDGE_*} environment):
     * see {@link CommandLine}.
     */
    public static void main(String[] args) throws InterruptedException {
        CommandLine options = CommandLine.parse("loans-worker", args);
        Worker worker = options.workerBuilder().clientId(options.clientId().orElse("loans-java")).build();
        LoansBridge.register(worker, new LoansWorker());
        worker.run();
    }
}
