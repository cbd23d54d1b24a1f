"""The sentence quoted for a question is the one that answers it, not the one sharing most words.

Each case is a kind the evaluation set (tests/knowledge/eval) showed choosing by shared words
alone gets wrong; each fails if its rule in functions/extractive.py is taken out.
"""

from __future__ import annotations

from functions.extractive import asks, asks_outright, extract, states
from shared.knowledge.search import Passage


def passage(content: str, source: str = "policy.md", heading: str | None = None,
            rank: int = 0) -> Passage:
    return Passage(chunk_id=rank + 1, document_id=rank + 1, collection="hr", source=source,
                   title=None, heading=heading, page=None, content=content, distance=0.1,
                   score=1.0)


def quoted(question: str, *passages: Passage) -> str:
    found = extract(question, passages)
    assert found is not None
    return found.sentence


def test_a_question_asking_an_amount_gets_the_sentence_that_states_one() -> None:
    text = ("La guardia es semanal y el relevo se hace el lunes en una reunión de traspaso. "
            "Cada semana de guardia se paga con 150 € brutos.")
    assert quoted("¿Cuánto se cobra por hacer una semana de guardia?", passage(text)) == (
        "Cada semana de guardia se paga con 150 € brutos.")


def test_a_question_asking_a_command_gets_the_sentence_with_it() -> None:
    text = ("Si la réplica de Postgres del clúster pg-mad-01 va retrasada, no promuevas nada a "
            "mano. Primero ejecuta `acmectl db failover --dry-run` y revisa el plan.")
    assert quoted("La réplica de Postgres va retrasada, ¿qué ejecuto primero?",
                  passage(text)).startswith("Primero ejecuta `acmectl")


def test_a_sentence_about_another_place_loses_to_one_about_the_place_asked() -> None:
    madrid = passage("Cada persona tiene 1.000 € al año para formación y cursos.",
                     "nominas-madrid.md")
    boston = passage("Each employee can spend up to $1,500 per year on courses and books.",
                     "benefits-boston.md", rank=1)
    assert quoted("Trabajo en Boston, ¿cuánto dinero tengo al año para formación?",
                  madrid, boston).startswith("Each employee can spend up to $1,500")


def test_the_search_s_first_passage_wins_what_shared_words_cannot_tell() -> None:
    """Asked in English of a Spanish document: few words are shared, the search's ranking
    (by meaning, in both languages) decides."""
    top = passage("Los días no disfrutados pueden gastarse hasta el 31 de marzo del año "
                  "siguiente.", "vacaciones-madrid.md")
    other = passage("Vacation requests go through the portal by December 31.", "pto.md",
                    rank=1)
    assert quoted("I didn't use all my vacation last year, until when can I still take those "
                  "days?", top, other).startswith("Los días no disfrutados")


def test_nothing_shared_and_nothing_of_the_kind_asked_is_no_extract() -> None:
    assert extract("How do I reset the espresso machine?",
                   [passage("The office opens at 8:00 on weekdays.")]) is None


def test_what_questions_ask_and_sentences_state() -> None:
    assert set(asks("¿A qué hora abre la oficina?")) == {"time"}
    assert "duration" in asks("How long can my laptop sit idle?")
    assert "day" in asks("When does the shift change hands?")
    # A leading "when" clause is not the question: what follows "¿" or the comma is.
    assert asks("Cuando salta un incidente, ¿quién hace de comandante al principio?") == {
        "person": 1.0}
    assert asks("When I'm on call, how much do I get paid?") == {"amount": 1.5}
    # A limit is an amount; "cuánto dura" a duration.
    for limit in ("What's the most I can spend per night on a hotel?",
                  "¿Hasta cuánto se puede gastar en una comida con un cliente?",
                  "What's the spending limit on the corporate card?",
                  "Si meto dinero en el plan, ¿cuánto pone la empresa?"):
        assert "amount" in asks(limit), limit
    assert "duration" in asks("¿Cuánto dura el periodo de prueba?")
    assert "duration" in asks("¿Cuánto tarda en montarse el entorno de desarrollo?")
    assert "duration" in asks("¿Cuánto suele tardar el bootstrap en un portátil nuevo?")
    # Pay is a verb, not every word that starts like it: "PagerDuty", "página".
    assert "amount" not in asks("What's the PagerDuty service for the Madrid on-call rota?")
    assert "amount" not in asks("¿Cada cuánto se actualiza la página de estado?")
    assert "amount" in asks("¿Me pagan las horas extra?")
    assert "phone" in asks("Someone stole my laptop. Which phone number do I call?")
    assert "phone" in asks("¿A qué número llamo si pierdo el portátil?")
    assert "phone" not in asks("How much do I get paid for a week on call?")
    assert "channel" in asks("¿En qué canal de Slack pego el log?")
    # A month is a day asked; a percentage an amount, asked outright.
    for month in ("¿En qué mes se puede cambiar lo que aporto al plan?",
                  "Which month is open enrolment in?", "In what month do reviews start?"):
        assert "day" in asks_outright(month), month
    for percentage in ("¿Con qué porcentaje me apuntan al 401(k) si no elijo nada?",
                       "What percentage of my salary does the company match?",
                       "What percent is the default contribution?"):
        assert "amount" in asks_outright(percentage), percentage
    assert "amount" in states("New hires are enrolled at 3% unless they choose otherwise.")
    assert "phone" in states("Llama al +34 910 555 199 en menos de una hora.")
    assert "channel" in states("Ask in #dev-env on Slack.")
    assert "channel" not in states("See ticket #1234, or the C# style guide at wiki/page#top.")
    assert "amount" in states("Personal car use is reimbursed at 70 cents per mile.")
    assert {"amount", "count", "duration"} <= states("A per diem of $75 per day.")
    assert "time" in states("The building opens at 8:00.")
    assert "command" in states("Run `make bootstrap` first.")
    assert "day" in states("Se suben antes del día 5 del mes siguiente.")  # a day of the month
    assert "command" in states("Si algo falla, ejecuta acme-vpn doctor y manda el informe.")
    assert "command" in states("Run make-env.sh from the repository's root.")
    assert "command" not in states("Run the numbers again before the review.")


def test_a_short_word_meets_its_plural() -> None:
    """Words are cut to 5 letters to meet their other forms, and a word of 4 or 5 letters
    meets its plural too ("flag" and "flags", "día" and "días"): the sentence that says
    "Flags" is the one about the flag asked."""
    text = ("Old branches are removed 30 days after their merge. "
            "Flags are removed 60 days after a full rollout.")
    assert quoted("How long until my flag is removed?", passage(text)).startswith("Flags")


def test_a_question_asking_how_often_gets_the_sentence_that_says_it_without_a_figure() -> None:
    """"El primer lunes de cada mes" states how often with no digit in it."""
    text = ("La red del personal es Acme-Madrid y entra con el certificado del portátil. "
            "Las visitas se conectan a Acme-Invitados; la contraseña cambia el primer lunes de "
            "cada mes.")
    assert quoted("How often does the guest Wi-Fi password change at the Madrid office?",
                  passage(text, "oficina-madrid.html")).startswith("Las visitas se conectan")
    assert "duration" in states("Los portátiles se revisan cada semana.")
    assert "duration" in states("Backups are checked weekly.")
    assert "duration" not in states("Cada persona tiene un portátil.")


def test_a_heading_in_capitals_is_not_taken_for_a_name_in_the_sentence_under_it() -> None:
    """"PRODUCTION ACCESS" over a paragraph is a heading, not a person the sentence names
    (the evaluation set's q47, its three passages shortened)."""
    onboarding = passage(
        "The bootstrap step installs the toolchain; it takes about 20 minutes on a new laptop.\n"
        "PRODUCTION ACCESS\nNobody gets production access by default. Complete the Prod "
        "Access 101 course in the learning portal, then ask Tom Becker in #sre-access; he "
        "grants read-only access first.", "engineering-onboarding.txt")
    owner = passage("Owner: Priya Natarajan, VP of Engineering. Applies to all repositories in "
                    "the acme-iberica GitHub organization.", "code-review.md", rank=1)
    reviews = passage(
        "One approval is enough for most repositories. Anything under payments/ or auth/ needs "
        "two approvals, one of them from a CODEOWNERS member. Reviewers should respond within "
        "one business day; if you are blocked longer, ask in #eng-reviews.", "code-review.md",
        rank=2)
    assert quoted("Who do I ask to get access to production?", onboarding, owner,
                  reviews).startswith("Complete the Prod Access 101 course")


def test_an_acronym_spelt_in_the_other_language_names_the_same_thing() -> None:
    """"GDPR" asked of a Spanish passage that says "RGPD": no other word is shared."""
    spanish = passage("Las solicitudes de acceso o supresión (RGPD) se contestan en un plazo "
                      "máximo de un mes.", "retencion-de-datos.md")
    other = passage("Submit the request in the portal at least two weeks in advance.",
                    "pto.md", rank=1)
    assert quoted("How quickly do we have to answer a GDPR deletion request?", spanish,
                  other).startswith("Las solicitudes de acceso o supresión (RGPD)")


def test_a_question_asked_in_the_other_language_meets_its_words_translated() -> None:
    """"screen", "locks" and "idle" are met by "pantalla", "bloquea" and "inactividad": the
    sentence that answers wins over an English one that shares "laptop" as written."""
    english = passage("The bootstrap step installs the toolchain; it takes about 20 minutes on a "
                      "new laptop.", "engineering-onboarding.txt")
    spanish = passage("Los portátiles se renuevan cada tres años. La pantalla se bloquea sola "
                      "tras 5 minutos de inactividad.", "vpn-y-portatiles.txt", rank=1)
    assert quoted("How long can my laptop sit idle before the screen locks itself?",
                  english, spanish) == "La pantalla se bloquea sola tras 5 minutos de inactividad."


def test_translated_words_count_only_across_languages() -> None:
    """Within one language the glossary's synonyms are not used: "cab" and "ride" are not met
    by "taxis", and the words as written decide."""
    text = ("Rideshare and taxis are fine for trips to and from airports and client sites. "
            "Itemized receipts are required for anything of $25 or more.")
    assert quoted("Do I need to keep the receipt for a $15 cab ride?",
                  passage(text, "travel-and-expenses-us.md")).startswith("Itemized receipts")


def test_a_word_met_as_written_counts_more_than_one_met_translated() -> None:
    """"errores" is "error" as written; "empieza" meets "starts" only through the glossary."""
    text = ("Every release starts with a canary deploy handled by deployctl. If the error rate "
            "of the canary climbs, deployctl rolls it back.")
    assert quoted("¿Qué pasa si el canario de un despliegue empieza a dar muchos errores?",
                  passage(text, "code-review-and-deploys.md")).startswith("If the error rate")


def test_a_word_met_translated_is_worth_one_met_as_written() -> None:
    """"milla" and "coche" are "mile" and "car": the US policy's sentence states the rate per
    mile asked for, over the Spanish policy ranked first, which shares as many words as
    written but is not about New Hampshire (held-out 2, g02: at three quarters of a word met
    as written, a word met translated lost it)."""
    spanish = passage("- Tren: AVE o Alvia en clase Estándar.\n- Avión: clase turista. Solo en "
                      "vuelos de más de seis horas se admite turista premium.\n- Coche propio: "
                      "se pagan 0,26 € por kilómetro, más peajes y aparcamiento con ticket.\n- "
                      "Taxi o VTC: cuando no haya transporte público razonable o después de las "
                      "22:00.", "gastos-y-viajes.md", heading="Gastos y viajes (España)")
    on_call = passage("Cada semana de guardia se paga con 150 € brutos, más 40 € por cada "
                      "incidente atendido fuera de horario. Si tienes que intervenir entre las "
                      "00:00 y las 07:00, te corresponde medio día libre al día siguiente.",
                      "guardias-madrid.md", rank=1)
    us = passage("- Fly economy. Flights longer than five hours may be booked in premium economy."
                 "\n- Between Boston and New York, take the Amtrak Acela; business class is "
                 "allowed on it.\n- Personal car use is reimbursed at the IRS standard mileage "
                 "rate, 70 cents per mile in 2025.\n- Rideshare and taxis are fine for trips to "
                 "and from airports and client sites.", "travel-and-expenses-us.md",
                 heading="Travel and Expenses — US Employees", rank=2)
    assert quoted("Tengo que ir en mi coche a ver a un cliente en New Hampshire. ¿Cuánto me "
                  "pagan por milla?", spanish, on_call, us).startswith("Personal car use")


def test_an_acronym_asked_in_capitals_meets_it_written_in_lower_case() -> None:
    """"VPN" names what "acme-vpn" names: the sentence with the command is not taken for one
    about something else."""
    tool = passage("Si algo falla, ejecuta acme-vpn doctor y manda el informe a IT.",
                   "vpn-y-portatiles.txt")
    other = passage("La VPN pide la YubiKey cada mañana.", "seguridad.md", rank=1)
    assert quoted("The VPN fails on my laptop, what do I run?", tool, other).startswith(
        "Si algo falla, ejecuta acme-vpn doctor")


def test_a_place_named_in_the_other_language_is_the_passage_about_it() -> None:
    """"Spain" is where a heading says "España" (the glossary's places): that passage's
    sentence wins over a US one ranked first."""
    us = passage("Transit passes can be paid with pre-tax money, up to $325 a month.",
                 "benefits-us.md", heading="Commuting")
    spain = passage("Puedes destinar hasta 136,36 € al mes a la tarjeta de transporte.",
                    "nominas.md", heading="Retribución flexible (España)", rank=1)
    assert quoted("In Spain, how much of my salary can go to the transport pass before tax?",
                  us, spain).startswith("Puedes destinar hasta 136,36 €")


def test_a_city_s_question_gets_the_policy_for_its_country() -> None:
    """A Boston question over a Spanish policy ranked first and a US one that never says
    "Boston": the US policy's sentence (functions/places.txt: Boston lies in the US), though
    the Spanish one shares more words as written."""
    spain = passage("Cada persona tiene un presupuesto de 1.000 € al año para formación y "
                    "cursos.", "nominas.md", heading="Nómina (España) › Formación")
    us = passage("Each employee can spend up to $1,500 per year on courses and conferences.",
                 "benefits.md", heading="Benefits and Payroll — US Employees", rank=1)
    assert quoted("Trabajo en Boston, ¿cuánto dinero tengo al año para formación?",
                  spain, us).startswith("Each employee can spend up to $1,500")


def test_a_place_of_several_words_is_met_by_all_its_words() -> None:
    """A New York question over a UK policy ranked first that says "new" and a US policy
    that never says "New York": the US policy's sentence, as for a city of one word."""
    uk = passage("New starters in the UK office can spend up to 1,000 pounds a year on "
                 "courses.", "benefits-uk.md", heading="Benefits — UK Employees")
    us = passage("Each employee can spend up to $1,500 per year on courses and conferences.",
                 "benefits.md", heading="Benefits and Payroll — US Employees", rank=1)
    assert quoted("I work in New York, how much can I spend per year on courses?",
                  uk, us).startswith("Each employee can spend up to $1,500")


def test_a_question_asking_the_most_one_may_spend_gets_the_sentence_with_the_amount() -> None:
    """"The most I can spend" asks an amount: the sentence stating one wins over one that
    shares more of the question's words and states none."""
    approval = passage("You can spend on client dinners only with your VP's approval, written "
                       "in the expense report.")
    limit = passage("Client dinners may go up to $120 per person.", rank=1)
    assert quoted("What's the most I can spend on a client dinner?",
                  approval, limit).startswith("Client dinners may go up to $120")


def test_a_question_asking_for_a_channel_gets_the_sentence_that_names_one() -> None:
    """"¿En qué canal…?" asks for a channel: the sentence naming "#security-urgent" wins over
    one that says "canal" and "Slack" as the question does but names none."""
    runbook = passage("Abre el canal del incidente con el bot de Slack y avisa al equipo.")
    policy = passage("Report a suspected security incident in #security-urgent on Slack "
                     "when it cannot wait.", rank=1)
    assert quoted("Creo que tengo malware y es urgente. ¿En qué canal de Slack lo aviso?",
                  runbook, policy).startswith("Report a suspected security incident")


def test_a_country_s_question_gets_the_policy_for_that_country() -> None:
    """"EE. UU." named: the US policy's sentence, over a Spanish one ranked first that shares
    more words as written."""
    spain = passage("Los tickets de gastos se suben a Gastia con el importe y la foto del "
                    "recibo.", "gastos.md", heading="Gastos (España)")
    us = passage("Itemized receipts are required for anything of $25 or more.",
                 "travel-us.md", heading="Travel and Expenses — US Employees", rank=1)
    assert quoted("Estoy en EE. UU.: ¿a partir de qué importe hace falta el recibo?",
                  spain, us).startswith("Itemized receipts")


def test_a_weekday_is_not_a_name_the_sentence_must_hold() -> None:
    """"Monday" says when the asker starts, not what the answer is about: the welcome's 9:30,
    not the building's opening hours because they say "lunes"."""
    welcome = passage("Te esperamos a las 9:30 en la recepción el primer día.", "bienvenida.docx")
    building = passage("El edificio abre de 8:00 a 20:00 de lunes a viernes.", "oficina.html",
                       rank=1)
    assert quoted("What time should I show up at reception on my first day, a Monday?",
                  welcome, building).startswith("Te esperamos a las 9:30")


def test_a_sentence_holding_the_question_s_code_wins() -> None:
    """Held-out 3's W-2 question: the payroll sentence states a day too and comes first; the
    one that holds the code, as the document writes it ("W-2s"), answers."""
    text = ("US employees are paid semi-monthly, on the 15th and on the last business day of "
            "each month, by direct deposit through PayHarbor. Year-end tax forms: W-2s are "
            "available in PayHarbor by January 31.")
    assert quoted("When will my W-2 show up for tax season?", passage(text)).startswith(
        "Year-end tax forms: W-2s")
    assert quoted("¿Con qué porcentaje me apuntan al 401(k) si no elijo nada?", passage(
        "Si aportas al plan de pensiones de empresa al menos un 2 % de tu salario, Acme aporta "
        "otro 2 %. New hires are enrolled in the 401(k) at 3% unless they choose otherwise."),
    ).startswith("New hires are enrolled")


def test_a_person_is_a_name_or_a_role_not_an_acronym_or_a_code() -> None:
    assert "person" in states("Complete the course, then ask Tom Becker in #sre-access.")
    assert "person" in states("The on-call engineer takes the role first.")
    assert "person" in states("Lo aprueba el responsable de tu equipo.")
    assert "person" not in states("Removable media and USB storage devices are blocked.")
    assert "person" not in states("Both SEV1 and SEV2 open a channel.")
