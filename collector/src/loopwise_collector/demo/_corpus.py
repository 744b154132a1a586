"""The demo's built-in content: a help center, the questions users ask it, and support tickets.

Everything is fixed text for a fictional SaaS product ("Acme Cloud"), so the demo needs no
network and no model, and the same seed always produces the same traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

PRODUCT = "Acme Cloud"


@dataclass(frozen=True, slots=True)
class Doc:
    """One help-center article."""

    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    """A question users ask, the articles that answer it, the answer, and a tool the agent calls."""

    text: str
    docs: tuple[str, ...]
    answer: str
    tool: str
    tool_args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Ticket:
    """A support ticket to summarise: subject, the thread, and what a good triage says."""

    id: str
    subject: str
    thread: tuple[str, ...]
    summary: str
    category: str
    priority: str


DOCS: dict[str, Doc] = {
    d.id: d
    for d in (
        Doc("kb-101", "Reset your password",
            "Open the sign-in page and choose 'Forgot password'. We email a reset link that is valid for 30 minutes. "
            "If the email does not arrive, check the spam folder and that the address matches your account. "
            "Accounts with SSO enabled reset their password with their identity provider instead."),
        Doc("kb-102", "Set up two-factor authentication",
            "Go to Settings > Security > Two-factor authentication and scan the QR code with an authenticator app. "
            "Save the ten recovery codes somewhere safe: each works once. Organisation owners can require 2FA for "
            "every member under Settings > Organisation > Policies."),
        Doc("kb-201", "How billing works",
            "Plans are billed monthly or yearly in advance, on the day you subscribed. Seats added mid-cycle are "
            "prorated to the day. Usage above your plan's included compute hours is billed in arrears at the end "
            "of the cycle. Prices exclude VAT, which is added for EU customers without a VAT ID."),
        Doc("kb-202", "Refund policy",
            "Yearly plans can be refunded in full within 14 days of purchase. Monthly plans are not refunded, but "
            "you can cancel at any time and keep access until the end of the paid period. Refunds go back to the "
            "original payment method within 5 to 10 business days."),
        Doc("kb-203", "Upgrade or downgrade your plan",
            "Change plans under Billing > Plan. Upgrades take effect immediately and the difference is prorated. "
            "Downgrades take effect at the next renewal; features of the higher plan stay available until then. "
            "Downgrading below the number of active seats requires removing members first."),
        Doc("kb-204", "Download invoices",
            "Every invoice is under Billing > Invoices as a PDF. Invoices show your company name, address and VAT "
            "ID as entered under Billing > Details at the time the invoice was issued. A corrected invoice can be "
            "requested from support within 60 days."),
        Doc("kb-301", "Create and rotate API keys",
            "API keys are created under Settings > API keys and shown once. Give each integration its own key. "
            "To rotate, create a new key, deploy it, then revoke the old one; revoked keys stop working within a "
            "minute. Keys inherit the permissions of the role chosen when they were created."),
        Doc("kb-302", "API rate limits",
            "The API allows 600 requests per minute per organisation on Pro and 3,000 on Business. Requests over the "
            "limit get HTTP 429 with a Retry-After header; clients should back off and retry. Bulk endpoints count "
            "as one request per call, whatever the number of items."),
        Doc("kb-303", "Webhooks and retries",
            "Webhooks are signed with HMAC-SHA256 in the X-Acme-Signature header. A delivery that does not get a 2xx "
            "within 10 seconds is retried with exponential backoff for 24 hours. Failed deliveries are listed under "
            "Settings > Webhooks > Deliveries, where they can be replayed."),
        Doc("kb-401", "Export your data",
            "Owners can export all projects as JSON or CSV under Settings > Organisation > Export. Large exports "
            "run in the background and the download link is emailed when ready; it stays valid for 7 days."),
        Doc("kb-402", "Close your account",
            "Closing an account cancels the subscription and schedules deletion of all data after 30 days. Export "
            "your data first. Until deletion, an owner can reopen the account by contacting support."),
        Doc("kb-501", "Single sign-on with SAML",
            "Business plans can enable SAML SSO under Settings > Organisation > SSO. Upload your identity provider's "
            "metadata XML and map the email attribute. Once SSO is enforced, password sign-in is disabled for "
            "members of verified domains."),
        Doc("kb-502", "Invite teammates and manage seats",
            "Invite members under Settings > Members. Each active member uses one seat; pending invitations do not. "
            "Removing a member frees the seat at once and the credit is applied to the next invoice."),
        Doc("kb-601", "Service status and incidents",
            "Live status is at status.acme.example. Subscribe there to get incident updates by email or Slack. "
            "Credits for downtime beyond the SLA are applied automatically on Business plans."),
    )
}  # fmt: skip

QUESTIONS: tuple[Question, ...] = (
    Question("I never got the password reset email, what should I do?", ("kb-101", "kb-501"),
             "The reset link is valid for 30 minutes and sometimes lands in spam. Please check that folder and make "
             "sure you used the email address on your account. If your company uses SSO, reset the password with "
             "your identity provider instead.", "get_account", (("email", "j.doe@example.com"),)),
    Question("How do I turn on 2FA for my whole team?", ("kb-102",),
             "As an organisation owner, go to Settings > Organisation > Policies and require two-factor "
             "authentication. Each member then scans a QR code with an authenticator app and saves their recovery "
             "codes.", "get_account", (("email", "owner@northwind.example"),)),
    Question("Why was I charged twice this month?", ("kb-201", "kb-204"),
             "It looks like one charge is your monthly plan and the second covers compute hours above your plan's "
             "allowance, which are billed in arrears. Both appear as separate lines on the invoice under Billing > "
             "Invoices.", "lookup_invoices", (("account", "acct_7731"), ("months", "2"))),
    Question("Can I get a refund on my annual plan? I bought it last week.", ("kb-202",),
             "Yes. Yearly plans can be refunded in full within 14 days of purchase, so you are still eligible. I have "
             "opened the refund; it reaches your original payment method within 5 to 10 business days.",
             "create_refund", (("account", "acct_2290"), ("reason", "changed_mind"))),
    Question("If I downgrade from Business to Pro, do I lose SSO right away?", ("kb-203", "kb-501"),
             "No. Downgrades take effect at your next renewal, so SSO and the other Business features stay available "
             "until then. After that, members sign in with passwords again.", "get_subscription",
             (("account", "acct_4410"),)),
    Question("Where can I download invoices with our VAT number on them?", ("kb-204", "kb-201"),
             "All invoices are under Billing > Invoices as PDFs. Add your VAT ID under Billing > Details; it appears "
             "on invoices issued after that. For an older invoice, ask us for a corrected copy within 60 days.",
             "lookup_invoices", (("account", "acct_1187"), ("months", "3"))),
    Question("How should I rotate an API key without downtime?", ("kb-301",),
             "Create a new key under Settings > API keys, deploy it to your integration, and only then revoke the "
             "old key. Revoked keys stop working within a minute, so deploy first.", "list_api_keys",
             (("account", "acct_5522"),)),
    Question("We keep getting HTTP 429 from the API. What's the limit?", ("kb-302",),
             "Your organisation is on Pro, which allows 600 requests per minute. A 429 comes with a Retry-After "
             "header; back off for that long and retry. With the bulk endpoints each call counts as one request.",
             "check_api_usage", (("account", "acct_3094"), ("window", "1h"))),
    Question("Our webhook endpoint was down for an hour. Did we lose events?", ("kb-303",),
             "No events are lost: deliveries are retried with exponential backoff for 24 hours. Anything that still "
             "failed is listed under Settings > Webhooks > Deliveries, where you can replay it.",
             "list_webhook_failures", (("account", "acct_6675"), ("since", "2h"))),
    Question("How do I export all our projects before we migrate?", ("kb-401", "kb-402"),
             "An owner can export every project as JSON or CSV under Settings > Organisation > Export. Large exports "
             "run in the background and we email a download link that stays valid for 7 days.", "start_export",
             (("account", "acct_8801"), ("format", "json"))),
    Question("What happens to our data if we close the account?", ("kb-402", "kb-401"),
             "Closing the account cancels the subscription and deletes all data after 30 days. Until then an owner "
             "can reopen it through support. We recommend exporting your data first.", "get_subscription",
             (("account", "acct_1299"),)),
    Question("Do pending invitations count as seats?", ("kb-502", "kb-201"),
             "No. Only active members use a seat, so pending invitations are free. Removing a member frees the seat "
             "immediately and the credit goes to your next invoice.", "get_subscription", (("account", "acct_3321"),)),
    Question("Is there an outage right now? The dashboard won't load.", ("kb-601",),
             "There is an open incident affecting dashboard loading in eu-west. Our engineers are on it; you can "
             "follow updates at status.acme.example. Business plans get SLA credits automatically.",
             "get_service_status", (("region", "eu-west"),)),
    Question("How do I set up SAML SSO with Okta?", ("kb-501", "kb-102"),
             "SAML SSO is on Business plans under Settings > Organisation > SSO. Upload Okta's metadata XML and map "
             "the email attribute. Once SSO is enforced, members of your verified domains can no longer sign in with "
             "a password.", "get_subscription", (("account", "acct_7004"),)),
)  # fmt: skip

FOLLOW_UPS: tuple[str, ...] = (
    "Thanks. One more thing: ",
    "Got it. Also, ",
    "OK, that helps. ",
    "Follow-up: ",
    "",
)

TICKETS: tuple[Ticket, ...] = (
    Ticket("T-48213", "Invoice shows wrong company name",
           ("Customer: Our March invoice lists our old company name. We rebranded in February and updated the "
            "billing details then. Finance needs a corrected invoice before month end.",
            "Agent: Thanks, I can see the details were changed on 2 March, after the invoice was issued on 1 March.",
            "Customer: Can you reissue it? The VAT ID is unchanged."),
           "Customer needs the March invoice reissued with the new company name; details changed a day after "
           "issuing. Within the 60-day window.", "billing", "normal"),
    Ticket("T-48240", "API returns 429 during nightly sync",
           ("Customer: Since Tuesday our nightly sync fails with 429 Too Many Requests after about 10 minutes.",
            "Customer: We did not change anything on our side. We're on Pro. Is the limit lower now?"),
           "Nightly sync hits the Pro rate limit (600 rpm) since Tuesday; customer reports no change on their side. "
           "Suggest bulk endpoints and Retry-After handling; check for a usage spike.", "api", "high"),
    Ticket("T-48255", "Locked out after losing phone",
           ("Customer: I lost my phone with the authenticator app and I don't have the recovery codes.",
            "Customer: I'm the only owner of the organisation. Please help, our team can't change any settings."),
           "Sole owner lost 2FA device and recovery codes; needs identity verification and a 2FA reset. "
           "Organisation blocked on admin changes.", "account", "urgent"),
    Ticket("T-48261", "Refund for accidental yearly upgrade",
           ("Customer: A colleague upgraded us to the yearly Business plan by mistake yesterday.",
            "Customer: We want to stay on monthly Pro. Can you refund the difference?"),
           "Accidental upgrade to yearly Business one day ago; within the 14-day refund window. Refund and revert "
           "to monthly Pro.", "billing", "normal"),
    Ticket("T-48277", "Webhook signature verification fails",
           ("Customer: All webhook deliveries since this morning fail our signature check.",
            "Customer: We compute HMAC-SHA256 over the parsed JSON with our secret. It worked until today.",
            "Agent: Are you hashing the raw body or re-serialised JSON?"),
           "Webhook signature checks fail since this morning; customer likely hashes re-serialised JSON instead of "
           "the raw body. Point to the docs; deliveries can be replayed.", "api", "high"),
    Ticket("T-48290", "SSO login loop with Azure AD",
           ("Customer: After enforcing SSO, users get redirected back to the login page endlessly.",
            "Customer: The SAML response looks fine in the browser tools. Email attribute is mapped to 'mail'."),
           "SSO redirect loop after enforcement with Azure AD; email attribute mapping may not match the expected "
           "claim. Needs SAML trace review.", "sso", "urgent"),
    Ticket("T-48302", "Export link expired",
           ("Customer: The export link from last week says it has expired. We need the data for an audit.",),
           "Export link expired after 7 days; customer needs a fresh export for an audit.", "data", "low"),
)  # fmt: skip

THUMBS_UP_COMMENTS: tuple[str, ...] = (
    "Exactly what I needed, thanks!",
    "Clear and quick.",
    "Solved it.",
    "Helpful, the link to the settings page saved me time.",
    "",
)

THUMBS_DOWN_COMMENTS: tuple[str, ...] = (
    "Didn't answer my question.",
    "Too vague, I still don't know what to click.",
    "The bot got stuck and I had to email support.",
    "Wrong plan: we're on Business, not Pro.",
    "Took forever and then failed.",
)

SYSTEM_PROMPTS: dict[str, str] = {
    "A": (
        f"You are the {PRODUCT} support assistant. Answer using only the help-center articles provided. "
        "Be friendly, give the exact menu path, and offer to open a ticket when the articles do not cover "
        "the question."
    ),
    "B": (
        f"You are {PRODUCT}'s support assistant. Reply in at most three sentences, grounded in the articles "
        "provided. Cite article ids in brackets. If unsure, say so and escalate."
    ),
}

PLANNER_PROMPT = (
    "Decide which tool, if any, answers the user's request. Tools: get_account, get_subscription, "
    "lookup_invoices, create_refund, list_api_keys, check_api_usage, list_webhook_failures, start_export, "
    'get_service_status. Reply with JSON: {"tool": name, "arguments": {...}}.'
)

SUMMARY_PROMPT = (
    "Summarise the support ticket for the on-call agent in two sentences, then classify it. Reply with JSON: "
    '{"summary": str, "category": str, "priority": "low"|"normal"|"high"|"urgent"}.'
)
